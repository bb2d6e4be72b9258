#!/usr/bin/env python3
"""Hugging Face `transformers` Whisper checkpoints for tests/it/models_import.rs, written with
numpy + safetensors only (no torch, no transformers, no download).

    hf_checkpoint.py from-ct2 CT2_DIR OUT_DIR [--shards N] [--tokenizer vocab|json] [--proj-out]
        The CTranslate2 model in CT2_DIR (model.bin, vocabulary.txt, config.json) re-packed in
        the layout `WhisperForConditionalGeneration.save_pretrained` writes: the fused
        projections split into q_proj/k_proj/v_proj (keys without bias), Hugging Face names,
        the same float16 values. --tokenizer vocab writes vocab.json + added_tokens.json
        stopping at <|notimestamps|> (as older Hub repos do); json writes tokenizer.json with
        every token. --shards N splits the weights over N files with an index.

    hf_checkpoint.py random-large-v3 OUT_DIR [--seed S]
        A tiny random checkpoint shaped like large-v3: 128 mel bins, the 51866-token
        vocabulary with <|yue|>, 2 encoder and 2 decoder layers, 64 wide, float32.

The CTranslate2 reader follows the format in /work/shared/MODELS.md (independently of the Rust
reader under test).
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
from safetensors.numpy import save_file

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}

LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur "
    "hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si "
    "km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha "
    "ba jw su yue"
).split()


def read_ct2(path):
    """{name: numpy array} of a CTranslate2 model.bin (aliases resolved)."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(n):
        nonlocal pos
        b = data[pos : pos + n]
        pos += n
        return b

    def u(fmt):
        return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

    def string():
        n = u("H")
        return take(n).split(b"\0")[0].decode()

    assert u("I") == 6, "CTranslate2 binary version 6 expected"
    assert string() == "WhisperSpec"
    u("I")  # revision
    out = {}
    for _ in range(u("I")):
        name = string()
        rank = u("B")
        dims = [u("I") for _ in range(rank)]
        dtype = DTYPES[u("B")]
        nbytes = u("I")
        out[name] = np.frombuffer(take(nbytes), dtype=dtype).reshape(dims)
    for _ in range(u("I")):
        alias, target = string(), string()
        out[alias] = out[target]
    return out


def split(a, n):
    return np.split(a, n, axis=0)


def ct2_to_hf(v):
    """Hugging Face tensors from CTranslate2 variables."""
    hf = {}
    n_enc = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("ffn/linear_1/weight"))
    n_dec = sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("ffn/linear_1/weight"))

    def norm(dst, src):
        hf[dst + ".weight"] = v[src + "/gamma"]
        hf[dst + ".bias"] = v[src + "/beta"]

    def linear(dst, src, bias=True):
        hf[dst + ".weight"] = v[src + "/weight"]
        if bias:
            hf[dst + ".bias"] = v[src + "/bias"]

    def fused(dsts, src):
        ws, bs = split(v[src + "/weight"], len(dsts)), split(v[src + "/bias"], len(dsts))
        for dst, w, b in zip(dsts, ws, bs):
            hf[dst + ".weight"] = w
            if not dst.endswith("k_proj"):  # Whisper's keys have no bias
                hf[dst + ".bias"] = b

    for s in ("conv1", "conv2"):
        linear(f"model.encoder.{s}", f"encoder/{s}")
    hf["model.encoder.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    for i in range(n_enc):
        p, c = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        norm(f"{p}.self_attn_layer_norm", f"{c}/self_attention/layer_norm")
        fused([f"{p}.self_attn.q_proj", f"{p}.self_attn.k_proj", f"{p}.self_attn.v_proj"], f"{c}/self_attention/linear_0")
        linear(f"{p}.self_attn.out_proj", f"{c}/self_attention/linear_1")
        norm(f"{p}.final_layer_norm", f"{c}/ffn/layer_norm")
        linear(f"{p}.fc1", f"{c}/ffn/linear_0")
        linear(f"{p}.fc2", f"{c}/ffn/linear_1")
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    hf["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    hf["model.decoder.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    for i in range(n_dec):
        p, c = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        norm(f"{p}.self_attn_layer_norm", f"{c}/self_attention/layer_norm")
        fused([f"{p}.self_attn.q_proj", f"{p}.self_attn.k_proj", f"{p}.self_attn.v_proj"], f"{c}/self_attention/linear_0")
        linear(f"{p}.self_attn.out_proj", f"{c}/self_attention/linear_1")
        norm(f"{p}.encoder_attn_layer_norm", f"{c}/attention/layer_norm")
        linear(f"{p}.encoder_attn.q_proj", f"{c}/attention/linear_0")
        fused([f"{p}.encoder_attn.k_proj", f"{p}.encoder_attn.v_proj"], f"{c}/attention/linear_1")
        linear(f"{p}.encoder_attn.out_proj", f"{c}/attention/linear_2")
        norm(f"{p}.final_layer_norm", f"{c}/ffn/layer_norm")
        linear(f"{p}.fc1", f"{c}/ffn/linear_0")
        linear(f"{p}.fc2", f"{c}/ffn/linear_1")
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    return {k: np.ascontiguousarray(a) for k, a in hf.items()}, n_enc, n_dec


def config_json(d_model, n_enc, n_dec, enc_heads, dec_heads, n_mels, n_vocab, n_audio_ctx, n_text_ctx):
    return {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "activation_function": "gelu",
        "d_model": d_model,
        "encoder_layers": n_enc,
        "decoder_layers": n_dec,
        "encoder_attention_heads": enc_heads,
        "decoder_attention_heads": dec_heads,
        "encoder_ffn_dim": 4 * d_model,
        "decoder_ffn_dim": 4 * d_model,
        "num_mel_bins": n_mels,
        "vocab_size": n_vocab,
        "max_source_positions": n_audio_ctx,
        "max_target_positions": n_text_ctx,
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "torch_dtype": "float16",
    }


def write_tokenizer(out, tokens, style):
    eot = tokens.index("<|endoftext|>")
    if style == "vocab":
        nots = tokens.index("<|notimestamps|>")
        with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump({t: i for i, t in enumerate(tokens[: eot + 1])}, f, ensure_ascii=False)
        with open(os.path.join(out, "added_tokens.json"), "w", encoding="utf-8") as f:
            json.dump({t: i for i, t in enumerate(tokens) if eot < i <= nots}, f, ensure_ascii=False)
    else:
        tok = {
            "version": "1.0",
            "model": {"type": "BPE", "vocab": {t: i for i, t in enumerate(tokens[:eot])}, "merges": []},
            "added_tokens": [
                {"id": i, "content": t, "special": True} for i, t in enumerate(tokens) if i >= eot
            ],
        }
        with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tok, f, ensure_ascii=False)


def save(out, tensors, shards):
    if shards <= 1:
        save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        return
    names = sorted(tensors)
    weight_map = {}
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        save_file(part, os.path.join(out, file), metadata={"format": "pt"})
        weight_map.update({n: file for n in part})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(a.nbytes for a in tensors.values())}, "weight_map": weight_map}, f)


def from_ct2(args):
    v = read_ct2(os.path.join(args.ct2_dir, "model.bin"))
    with open(os.path.join(args.ct2_dir, "vocabulary.txt"), encoding="utf-8") as f:
        tokens = f.read().split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    with open(os.path.join(args.ct2_dir, "config.json")) as f:
        ct2_config = json.load(f)
    hf, n_enc, n_dec = ct2_to_hf(v)
    if args.proj_out:
        hf["proj_out.weight"] = hf["model.decoder.embed_tokens.weight"]
    d_model = v["encoder/position_encodings/encodings"].shape[1]
    os.makedirs(args.out, exist_ok=True)
    save(args.out, hf, args.shards)
    cfg = config_json(
        d_model, n_enc, n_dec,
        int(v["encoder/num_heads"].item()), int(v["decoder/num_heads"].item()),
        v["encoder/conv1/weight"].shape[1], v["decoder/embeddings/weight"].shape[0],
        v["encoder/position_encodings/encodings"].shape[0], v["decoder/position_encodings/encodings"].shape[0],
    )
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_tokenizer(args.out, tokens, args.tokenizer)
    gen = {
        "alignment_heads": ct2_config.get("alignment_heads", []),
        "lang_to_id": {tokens[i]: i for i in ct2_config.get("lang_ids", [])},
        "is_multilingual": bool(ct2_config.get("lang_ids")),
    }
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2, ensure_ascii=False)
    print(json.dumps({"tensors": len(hf), "layers": [n_enc, n_dec], "tokens": len(tokens)}))


def byte_alphabet():
    """GPT-2's bytes_to_unicode."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def large_v3_tokens():
    alphabet = byte_alphabet()
    spell = lambda s: "".join(alphabet[b] for b in s.encode())
    tokens = [alphabet[b] for b in range(256)]
    tokens += [spell(f" tok{i}") for i in range(256, 50257)]
    tokens += ["<|endoftext|>", "<|startoftranscript|>"]
    tokens += [f"<|{l}|>" for l in LANGUAGES]
    tokens += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    tokens += [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    assert len(tokens) == 51866, len(tokens)
    return tokens


def random_large_v3(args):
    rng = np.random.default_rng(args.seed)
    d, layers, mels, n_vocab = 64, 2, 128, 51866
    n_audio_ctx, n_text_ctx = 1500, 448
    r = lambda *shape: (rng.standard_normal(shape) * 0.02).astype(np.float32)
    hf = {}

    def norm(p):
        hf[p + ".weight"] = np.ones(d, np.float32)
        hf[p + ".bias"] = np.zeros(d, np.float32)

    def attn(p):
        for m in ("q_proj", "k_proj", "v_proj", "out_proj"):
            hf[f"{p}.{m}.weight"] = r(d, d)
            if m != "k_proj":
                hf[f"{p}.{m}.bias"] = r(d)

    def mlp(p):
        hf[p + ".fc1.weight"], hf[p + ".fc1.bias"] = r(4 * d, d), r(4 * d)
        hf[p + ".fc2.weight"], hf[p + ".fc2.bias"] = r(d, 4 * d), r(d)
        norm(p + ".final_layer_norm")

    hf["model.encoder.conv1.weight"], hf["model.encoder.conv1.bias"] = r(d, mels, 3), r(d)
    hf["model.encoder.conv2.weight"], hf["model.encoder.conv2.bias"] = r(d, d, 3), r(d)
    hf["model.encoder.embed_positions.weight"] = r(n_audio_ctx, d)
    for i in range(layers):
        p = f"model.encoder.layers.{i}"
        attn(p + ".self_attn")
        norm(p + ".self_attn_layer_norm")
        mlp(p)
    norm("model.encoder.layer_norm")
    hf["model.decoder.embed_tokens.weight"] = r(n_vocab, d)
    hf["model.decoder.embed_positions.weight"] = r(n_text_ctx, d)
    for i in range(layers):
        p = f"model.decoder.layers.{i}"
        attn(p + ".self_attn")
        norm(p + ".self_attn_layer_norm")
        attn(p + ".encoder_attn")
        norm(p + ".encoder_attn_layer_norm")
        mlp(p)
    norm("model.decoder.layer_norm")
    os.makedirs(args.out, exist_ok=True)
    save(args.out, hf, 1)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config_json(d, layers, layers, 2, 2, mels, n_vocab, n_audio_ctx, n_text_ctx), f, indent=2)
    tokens = large_v3_tokens()
    write_tokenizer(args.out, tokens, "json")
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"lang_to_id": {f"<|{l}|>": 50259 + i for i, l in enumerate(LANGUAGES)}, "alignment_heads": [[1, 0]]}, f)
    print(json.dumps({"tensors": len(hf), "tokens": len(tokens)}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("from-ct2")
    a.add_argument("ct2_dir")
    a.add_argument("out")
    a.add_argument("--shards", type=int, default=1)
    a.add_argument("--tokenizer", choices=["vocab", "json"], default="vocab")
    a.add_argument("--proj-out", action="store_true")
    b = sub.add_parser("random-large-v3")
    b.add_argument("out")
    b.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    {"from-ct2": from_ct2, "random-large-v3": random_large_v3}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
