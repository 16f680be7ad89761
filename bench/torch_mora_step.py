#!/usr/bin/env python3
"""PyTorch reference for bench/trainBench.ts: the same MoRA (type 6) training step on the same generated LLaMA
weights — forward, cross-entropy, backward into the MoRA matrices only, AdamW — timed per step.

Usage: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_mora_step.py --model DIR [--batch 4 --seq 128
       --steps 5 --threads 2 --r 8 --targets q_proj,v_proj]
Prints one JSON line. Needs only torch + numpy (Debian python3-torch); safetensors are parsed by hand.
"""
import argparse, json, math, os, struct, sys, time

import numpy as np
import torch
import torch.nn.functional as F

DT = {"F32": np.float32, "F16": np.float16}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        if info["dtype"] == "BF16":
            raw = np.frombuffer(data[a:b], dtype=np.uint16).astype(np.uint32) << 16
            arr = raw.view(np.float32)
        else:
            arr = np.frombuffer(data[a:b], dtype=DT[info["dtype"]]).astype(np.float32)
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


def mora_rank(in_f, out_f, r):
    r_hat = int(math.floor(math.sqrt((in_f + out_f) * r) + 0.5))
    return r_hat // 2 * 2  # type 6 needs an even r̂


def apply_mora6(x, M, in_f, out_f):
    """kongds/MoRA peft-mora _apply_mora for mora_type 6 (RoPE-rotated chunks, shared M)."""
    r = M.shape[0]
    chunks = (in_f + r - 1) // r
    if in_f % r:
        x = torch.cat([x, x[..., : r - in_f % r]], dim=-1)
    ix = x.view(*x.shape[:-1], chunks, r)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, r, 2).float() / r))
    freqs = torch.outer(torch.arange(chunks).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    rh = torch.cat((-ix[..., r // 2:], ix[..., : r // 2]), dim=-1)
    ix = ix * emb.cos() + rh * emb.sin()
    y = (ix @ M.t()).reshape(*x.shape[:-1], -1)[..., :out_f]
    if y.shape[-1] < out_f:
        y = torch.cat([y] * (out_f // y.shape[-1] + 1), dim=-1)[..., :out_f]
    return y


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--targets", default="q_proj,v_proj")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    W = load_safetensors(os.path.join(a.model, "model.safetensors"))
    H, L, nh = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = H // nh
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    targets = a.targets.split(",")
    lm_head = W.get("lm_head.weight", W["model.embed_tokens.weight"])

    Ms = {}
    for i in range(L):
        for t in targets:
            key = next(k for k in W if k.startswith(f"model.layers.{i}.") and k.endswith(f".{t}.weight"))
            out_f, in_f = W[key].shape
            Ms[key] = torch.zeros(mora_rank(in_f, out_f, a.r), mora_rank(in_f, out_f, a.r), requires_grad=True)
    # A non-zero, deterministic M (same formula as trainBench.ts: 0.01·sin(j + k) for element j of module k), so
    # both implementations start from identical weights and their first losses must agree.
    with torch.no_grad():
        for k, M in enumerate(Ms.values()):
            M.copy_(0.01 * torch.sin(torch.arange(M.numel(), dtype=torch.float64) + k).float().view_as(M))
    opt = torch.optim.AdamW(list(Ms.values()), lr=1e-3, weight_decay=0.0)

    def lin(x, name):
        w = W[name]
        y = x @ w.t()
        if name.replace(".weight", ".bias") in W:
            y = y + W[name.replace(".weight", ".bias")]
        if name in Ms:
            y = y + apply_mora6(x, Ms[name], w.shape[1], w.shape[0])
        return y

    T, B = a.seq, a.batch
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.outer(torch.arange(T).float(), inv)
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
    rot = lambda x: torch.cat((-x[..., hd // 2:], x[..., : hd // 2]), -1)
    mask = torch.full((T, T), float("-inf")).triu(1)
    ids = ((torch.arange(B * T) * 7919 + 13) % cfg["vocab_size"]).view(B, T)  # same formula as trainBench.ts
    labels = torch.cat([ids[:, 1:], torch.full((B, 1), -100)], 1)

    def loss_fn():
        x = W["model.embed_tokens.weight"][ids]
        for i in range(L):
            p = f"model.layers.{i}."
            h = rms(x, W[p + "input_layernorm.weight"], eps)
            q = lin(h, p + "self_attn.q_proj.weight").view(B, T, nh, hd).transpose(1, 2)
            k = lin(h, p + "self_attn.k_proj.weight").view(B, T, nkv, hd).transpose(1, 2)
            v = lin(h, p + "self_attn.v_proj.weight").view(B, T, nkv, hd).transpose(1, 2)
            q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
            k, v = k.repeat_interleave(nh // nkv, 1), v.repeat_interleave(nh // nkv, 1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, -1) @ v
            x = x + lin(att.transpose(1, 2).reshape(B, T, nh * hd), p + "self_attn.o_proj.weight")
            h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
            x = x + lin(F.silu(lin(h, p + "mlp.gate_proj.weight")) * lin(h, p + "mlp.up_proj.weight"), p + "mlp.down_proj.weight")
        logits = rms(x, W["model.norm.weight"], eps) @ lm_head.t()
        return F.cross_entropy(logits.view(B * T, -1), labels.reshape(-1), ignore_index=-100)

    times, losses = [], []
    for s in range(a.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        if s > 0:  # step 0 warms up allocators and caches
            times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    ms = 1000 * sorted(times)[len(times) // 2]
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads, "batch": B, "seq": T,
                      "msPerStep": round(ms, 1), "tokensPerSec": round(B * T / (ms / 1000), 1),
                      "trainable": sum(M.numel() for M in Ms.values()), "firstLoss": round(losses[0], 4)}))


if __name__ == "__main__":
    sys.exit(main())
