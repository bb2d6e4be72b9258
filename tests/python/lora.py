#!/usr/bin/env python3
"""Synthetic PEFT LoRA adapters and an independent check of a merge, for tests/it/models_import.rs.
numpy + safetensors only.

    lora.py make BASE.ggml OUT_DIR [--r R] [--alpha A] [--rslora] [--zero-b] [--seed S]
        Writes OUT_DIR/adapter_config.json and adapter_model.safetensors as PEFT saves them
        for WhisperForConditionalGeneration with target_modules q_proj, v_proj and fc1: random
        A (r x in) and B (out x r), float32, for every such layer of the model in BASE.ggml
        (its sizes read from the file). --zero-b makes every B zero (PEFT's initial state).

    lora.py check BASE.ggml MERGED.ggml ADAPTER_DIR
        Reads both ggml files and the adapter, computes W + s*B@A in float64 for every targeted
        tensor (s = alpha/r, or alpha/sqrt(r) with use_rslora) and requires the merged f16
        value within one f16 step (np.spacing) of it; every other tensor must be byte-identical.
        Prints {"merged": n, "untouched": n, "max_steps": x, "max_abs_delta": y} as JSON;
        exits 1 naming the first tensor that fails.
"""

import json
import math
import os
import struct
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

GGML_TYPES = {0: np.float32, 1: np.float16}


def read_ggml(path):
    """(hparams dict, {name: (type_id, numpy shape, raw bytes)}) of a whisper.cpp ggml file."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def i32():
        nonlocal pos
        v = struct.unpack_from("<i", data, pos)[0]
        pos += 4
        return v

    assert struct.unpack_from("<I", data, 0)[0] == 0x67676D6C, "not a ggml file"
    pos = 4
    keys = "n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer n_text_ctx n_text_state n_text_head n_text_layer n_mels ftype".split()
    hp = {k: i32() for k in keys}
    n_mel, n_fft = i32(), i32()
    pos += n_mel * n_fft * 4
    for _ in range(i32()):
        n = i32()  # a length-prefixed token
        pos += n
    tensors = {}
    while pos < len(data):
        n_dims, name_len, ttype = i32(), i32(), i32()
        ne = [i32() for _ in range(n_dims)]
        name = data[pos : pos + name_len].decode()
        pos += name_len
        if ttype not in GGML_TYPES:
            sys.exit(f"{path}: tensor {name} has type {ttype}; this check reads f16/f32 files")
        n = int(np.prod(ne)) * np.dtype(GGML_TYPES[ttype]).itemsize
        tensors[name] = (ttype, list(reversed(ne)), data[pos : pos + n])
        pos += n
    return hp, tensors


def weight_modules(tensors):
    """{PEFT module path: ggml name} for every linear weight of the model."""
    table = {
        ("attn", "query"): "self_attn.q_proj", ("attn", "key"): "self_attn.k_proj",
        ("attn", "value"): "self_attn.v_proj", ("attn", "out"): "self_attn.out_proj",
        ("cross_attn", "query"): "encoder_attn.q_proj", ("cross_attn", "key"): "encoder_attn.k_proj",
        ("cross_attn", "value"): "encoder_attn.v_proj", ("cross_attn", "out"): "encoder_attn.out_proj",
        ("mlp", "0"): "fc1", ("mlp", "2"): "fc2",
    }
    out = {}
    for name in tensors:
        p = name.split(".")
        # encoder.blocks.3.attn.query.weight
        if len(p) == 6 and p[1] == "blocks" and p[-1] == "weight" and (p[3], p[4]) in table:
            out[f"model.{p[0]}.layers.{p[2]}.{table[(p[3], p[4])]}"] = name
    return out


TARGETS = ["q_proj", "v_proj", "fc1"]


def make(base, out, r, alpha, rslora, zero_b, seed):
    _, tensors = read_ggml(base)
    rng = np.random.default_rng(seed)
    adapter = {}
    for module, name in sorted(weight_modules(tensors).items()):
        if module.rsplit(".", 1)[-1] not in TARGETS:
            continue
        out_dim, in_dim = tensors[name][1]
        a = (rng.standard_normal((r, in_dim)) * 0.02).astype(np.float32)
        b = np.zeros((out_dim, r), np.float32) if zero_b else (rng.standard_normal((out_dim, r)) * 0.02).astype(np.float32)
        adapter[f"base_model.model.{module}.lora_A.weight"] = a
        adapter[f"base_model.model.{module}.lora_B.weight"] = b
    os.makedirs(out, exist_ok=True)
    save_file(adapter, os.path.join(out, "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA", "task_type": None, "base_model_name_or_path": "openai/whisper-base",
        "r": r, "lora_alpha": alpha, "lora_dropout": 0.05, "target_modules": TARGETS,
        "fan_in_fan_out": False, "bias": "none", "use_rslora": rslora, "use_dora": False,
        "modules_to_save": None, "init_lora_weights": True, "rank_pattern": {}, "alpha_pattern": {},
        "inference_mode": True,
    }
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(json.dumps({"modules": len(adapter) // 2}))


def check(base, merged, adapter_dir):
    _, bt = read_ggml(base)
    _, mt = read_ggml(merged)
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    r, alpha = cfg["r"], cfg["lora_alpha"]
    s = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    weights = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    by_name = {name: module for module, name in weight_modules(bt).items()}
    if set(bt) != set(mt):
        sys.exit(f"tensor sets differ: {sorted(set(bt) ^ set(mt))[:5]}")
    n_merged = n_same = 0
    max_steps = max_delta = 0.0
    for name, (btype, shape, braw) in bt.items():
        mtype, mshape, mraw = mt[name]
        module = by_name.get(name)
        key = f"base_model.model.{module}.lora_A.weight" if module else None
        if key not in weights:
            if braw != mraw or btype != mtype:
                sys.exit(f"{name}: untargeted tensor changed")
            n_same += 1
            continue
        w = np.frombuffer(braw, GGML_TYPES[btype]).astype(np.float64).reshape(shape)
        a = weights[key].astype(np.float64)
        b = weights[f"base_model.model.{module}.lora_B.weight"].astype(np.float64)
        want = w + s * (b @ a)
        got = np.frombuffer(mraw, GGML_TYPES[mtype]).astype(np.float64).reshape(mshape)
        step = np.spacing(np.abs(want).astype(np.float16)).astype(np.float64)
        # float16's smallest subnormal step for values that round to zero
        step = np.maximum(step, 2.0**-24)
        steps = np.abs(got - want) / step
        worst = float(steps.max())
        if worst > 1.0:
            i = np.unravel_index(int(steps.argmax()), steps.shape)
            sys.exit(f"{name}{list(i)}: merged {got[i]!r}, W + s*B@A = {want[i]!r} ({worst:.2f} f16 steps)")
        max_steps = max(max_steps, worst)
        max_delta = max(max_delta, float(np.abs(want - w).max()))
        n_merged += 1
    print(json.dumps({"merged": n_merged, "untouched": n_same, "max_steps": max_steps, "max_abs_delta": max_delta, "scale": s}))


def main():
    args = sys.argv[1:]
    if args[:1] == ["make"] and len(args) >= 3:
        opts = args[3:]
        get = lambda flag, default: type(default)(opts[opts.index(flag) + 1]) if flag in opts else default
        make(args[1], args[2], get("--r", 8), get("--alpha", 16.0), "--rslora" in opts, "--zero-b" in opts, get("--seed", 0))
    elif args[:1] == ["check"] and len(args) == 4:
        check(*args[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
