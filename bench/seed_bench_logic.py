"""The parts of bench/seed_bench.py that need neither PyTorch nor a GPU: the seed's
configurations and layer shapes, FLOP counting, the accuracy rule, flags, the choice of the
fastest backend, and the markdown tables. bench/test_seed_bench_logic.py tests them with plain
python3; `seed_bench.py --render DIR` re-renders a results folder from its results.json.

Everything here works on the results document (results.json) as plain dicts:

    doc = {"meta": {..., "peak": {"tflops": ...}}, "backends": [[name, label], ...],
           "results": [entry, ...]}
    entry = {"level": "core"|"layer", "kind": "mha", "index": 1, "causal": False,
             "config": {...}, "flops": {"fwd": ..., "bwd": ..., "total": ...},
             "backends": {name: {"status": "ok"|"unsupported"|"error", "reason": ...,
                                 "check": {"ok": bool, "tensors": {...}},
                                 "times": {pass: {"median_ms": ...}}}}}

annotate(entry, peak_tflops) adds TFLOP/s, % of peak, flags and the fastest backend per pass.
"""
import dataclasses
import datetime
import re

# (name, label), in table order. "math" is the seed's "PyTorch" column and the speedup baseline.
BACKENDS = [
    ("attnjit", "attnjit"),
    ("math", "SDPA math"),
    ("flash", "SDPA flash"),
    ("efficient", "SDPA efficient"),
    ("cudnn", "SDPA cuDNN"),
    ("flex", "FlexAttention"),
]
BASELINE = "math"
OURS = "attnjit"
PASSES = ("fwd", "bwd", "total")
PASS_TITLES = {"fwd": "Forward", "bwd": "Backward", "total": "Total"}
LEVELS = ("core", "layer")
LEVEL_TITLES = {"core": "Attention core", "layer": "Layer (projections + attention)"}

KIND_TITLES = {
    "mhsa": "Multi-Head Self-Attention (Fused QKV)",
    "mha": "Multi-Head Attention (Separate Q/K/V)",
    "gqa": "Grouped Query Attention (GQA)",
    "mqa": "Multi-Query Attention (MQA)",
    "mla": "Multi-Head Latent Attention",
}
KINDS = tuple(KIND_TITLES)

# The accuracy rule, per tensor (as the C++ tests and tests/python/test_torch_attention.py):
# |backend - reference| <= factor * |plain - reference| + floor * max(1, rms(reference)), max
# over elements, where plain is a straightforward implementation in bf16. The floor scales with
# the tensor's size so that weight gradients (sums over B*S rows) get the same relative slack.
FACTOR = {"fwd": 2.0, "grad": 3.0}
FLOOR = {"fwd": 2e-3, "grad": 3e-3}

# MLA: DeepSeek-V2/V3's ratio of query to KV latent (q_lora_rank 1536 : kv_lora_rank 512).
Q_LATENT_PER_KV_LATENT = 3


@dataclasses.dataclass(frozen=True)
class Config:
    """One of the seed's configurations. hidden = heads * head_dim (the seed's layers). MLA:
    kv latent = latent, q latent = 3 * latent, per-head q/k/v head_dim, plus `rope` decoupled
    RoPE dims on q and k (DeepSeek's qk_rope_head_dim; 0 = the seed's 128/128 core)."""
    kind: str
    index: int  # 1..3 within the kind, as the seed numbers them
    batch: int
    seqlen: int
    heads: int
    kv_heads: int
    head_dim: int
    latent: int = 0
    rope: int = 0

    @property
    def key(self):
        return f"{self.kind}-{self.index}"

    @property
    def hidden(self):
        return self.heads * self.head_dim

    @property
    def dqk(self):
        return self.head_dim + self.rope

    @property
    def dv(self):
        return self.head_dim

    @property
    def q_latent(self):
        return Q_LATENT_PER_KV_LATENT * self.latent

    def title(self):
        """The seed's heading: 'Configuration 1: Batch=2, SeqLen=2048, Heads=12, HeadDim=64'."""
        parts = [f"Batch={self.batch}", f"SeqLen={self.seqlen}", f"Heads={self.heads}"]
        if self.kind in ("gqa", "mqa"):
            parts.append(f"KVHeads={self.kv_heads}")
        parts.append(f"HeadDim={self.head_dim}")
        if self.kind == "mla":
            parts.append(f"LatentDim={self.latent}")
            extra = f"q latent {self.q_latent}"
            if self.rope:
                extra += f", rope {self.rope}: core {self.dqk}/{self.dv}"
            return f"Configuration {self.index}: {', '.join(parts)} ({extra})"
        return f"Configuration {self.index}: {', '.join(parts)}"

    def shape(self):
        """Short form for summary rows: 'B2 S2048 H12/12 D64' (and the latent for MLA)."""
        d = f"D{self.dqk}" if self.dqk == self.dv else f"D{self.dqk}/{self.dv}"
        s = f"B{self.batch} S{self.seqlen} H{self.heads}/{self.kv_heads} {d}"
        return s + (f" L{self.latent}" if self.kind == "mla" else "")

    def weights(self):
        """The layer's weights as (name, out_features, in_features), nn.Linear's [out, in], in
        the order the layer applies them. No biases."""
        h, kv, d, hid = self.heads, self.kv_heads, self.head_dim, self.hidden
        if self.kind == "mhsa":
            proj = [("w_qkv", 3 * h * d, hid)]
        elif self.kind == "mla":
            proj = [("w_dq", self.q_latent, hid),              # x -> q latent
                    ("w_uq", h * self.dqk, self.q_latent),     # q latent -> per-head q
                    ("w_dkv", self.latent + self.rope, hid),   # x -> kv latent (+ shared rope key)
                    ("w_ukv", h * 2 * d, self.latent)]         # kv latent -> per-head k, v
        else:
            proj = [("w_q", h * d, hid), ("w_k", kv * d, hid), ("w_v", kv * d, hid)]
        return proj + [("w_o", hid, h * self.dv)]

    def as_dict(self):
        d = dataclasses.asdict(self)
        d.update(key=self.key, hidden=self.hidden, dqk=self.dqk, dv=self.dv,
                 q_latent=self.q_latent)
        return d


def seed_configs(rope=0):
    """The 15 configurations of /work/shared/seed/000_5b005b635eb5ddc3.txt, in its order."""
    rows = [
        ("mhsa", 2, 2048, 12, 12, 64, 0), ("mhsa", 1, 4096, 32, 32, 128, 0),
        ("mhsa", 1, 2048, 40, 40, 128, 0),
        ("mha", 2, 2048, 12, 12, 64, 0), ("mha", 1, 4096, 32, 32, 128, 0),
        ("mha", 1, 2048, 40, 40, 128, 0),
        ("gqa", 2, 2048, 32, 8, 64, 0), ("gqa", 1, 4096, 32, 8, 128, 0),
        ("gqa", 1, 2048, 40, 8, 128, 0),
        ("mqa", 2, 2048, 16, 1, 64, 0), ("mqa", 1, 4096, 32, 1, 128, 0),
        ("mqa", 1, 2048, 40, 1, 128, 0),
        ("mla", 2, 2048, 32, 32, 128, 512), ("mla", 1, 4096, 64, 64, 128, 1024),
        ("mla", 1, 2048, 128, 128, 128, 2048),
    ]
    return [Config(kind, i % 3 + 1, b, s, h, kv, d, latent, rope if kind == "mla" else 0)
            for i, (kind, b, s, h, kv, d, latent) in enumerate(rows)]


QUICK_KEYS = ("mhsa-1", "gqa-1", "mla-1")  # every layer code path, the smallest shapes


def select_configs(configs, keys=None, quick=False):
    """`keys`: comma-separated 'mha-1', 'gqa' (all three) or 'all'; unknown keys raise."""
    if keys is None or keys == "all":
        wanted = QUICK_KEYS if quick else None
    else:
        wanted = [k.strip() for k in keys.split(",") if k.strip()]
    if wanted is None:
        return list(configs)
    chosen = []
    for k in wanted:
        match = [c for c in configs if c.key == k or c.kind == k]
        if not match:
            raise ValueError(f"unknown configuration {k!r}: use e.g. mha-1, gqa or all "
                             f"(known: {', '.join(c.key for c in configs)})")
        chosen += [c for c in match if c not in chosen]
    return chosen


# ---- FLOPs -------------------------------------------------------------------------------------

def attention_flops(cfg, causal, pass_):
    """2*B*H*Sq*Sk*(Dqk + Dv) forward (4*B*H*S^2*D for equal dims), half when causal; the
    backward counts 2.5x the forward, total 3.5x."""
    f = 2.0 * cfg.batch * cfg.heads * cfg.seqlen * cfg.seqlen * (cfg.dqk + cfg.dv)
    if causal:
        f /= 2
    return f * {"fwd": 1.0, "bwd": 2.5, "total": 3.5}[pass_]


def gemm_flops(cfg, pass_):
    """2*M*N*K per projection (M = B*S) forward; the backward's dX and dW GEMMs are 2x that."""
    m = cfg.batch * cfg.seqlen
    f = sum(2.0 * m * n * k for _, n, k in cfg.weights())
    return f * {"fwd": 1.0, "bwd": 2.0, "total": 3.0}[pass_]


def flops(cfg, causal, level, pass_):
    f = attention_flops(cfg, causal, pass_)
    return f + gemm_flops(cfg, pass_) if level == "layer" else f


# ---- The check ---------------------------------------------------------------------------------

def tolerance(plain_error, ref_rms, grad):
    kind = "grad" if grad else "fwd"
    return FACTOR[kind] * plain_error + FLOOR[kind] * max(1.0, ref_rms)


def check_tensor(error, plain_error, ref_rms, grad, nans=0):
    """One tensor's verdict. `error` and `plain_error` are max |x - reference|; NaN fails."""
    tol = tolerance(plain_error, ref_rms, grad)
    ok = nans == 0 and error == error and error <= tol  # error != error: NaN
    return {"error": error, "plain_error": plain_error, "tolerance": tol, "ref_rms": ref_rms,
            "nans": nans, "ok": bool(ok)}


def subset_heads(batch, heads, kv_heads, max_kv=4):
    """The slice of a core problem the fp64 reference recomputes: batches {0, B-1} and up to
    `max_kv` KV heads spread over the range, with every query head of their groups (so dK and dV,
    sums over the group, are exact). Returns (batches, kv_heads, query_heads), sorted."""
    batches = sorted({0, batch - 1})
    n = min(kv_heads, max_kv)
    kvs = sorted({round(i * (kv_heads - 1) / max(1, n - 1)) for i in range(n)})
    group = heads // kv_heads
    qs = [kv * group + i for kv in kvs for i in range(group)]
    return batches, kvs, qs


# ---- Flags and the fastest backend -------------------------------------------------------------

def annotate(entry, peak_tflops=None):
    """Adds to every backend of `entry`: tflops and pct_peak per timed pass, and flags ('FAIL':
    the check failed; 'OVER-PEAK': a pass implies more than the measured peak, which flags the
    backend for the whole configuration); then entry['best'][pass] = the fastest eligible
    backend, its time, the speedup over SDPA math and attnjit's ratio to the fastest other.
    The peak is the entry's own (`peak_tflops`, measured by the run that made it) if it has one."""
    peak_tflops = entry.get("peak_tflops") or peak_tflops
    for b in entry["backends"].values():
        b["tflops"], b["pct_peak"], b["flags"] = {}, {}, []
        if b.get("status") != "ok":
            continue
        for p, t in (b.get("times") or {}).items():
            ms = t.get("median_ms")
            if ms and ms > 0:
                tf = entry["flops"][p] / (ms * 1e-3) / 1e12
                b["tflops"][p] = tf
                b["pct_peak"][p] = 100.0 * tf / peak_tflops if peak_tflops else None
        if not (b.get("check") or {}).get("ok", False):
            b["flags"].append("FAIL")
        if peak_tflops and any(tf > peak_tflops for tf in b["tflops"].values()):
            b["flags"].append("OVER-PEAK")
    entry["best"] = {p: fastest(entry, p) for p in PASSES}
    return entry


def eligible(b, pass_):
    """May this backend be called the fastest for this pass?"""
    return (b.get("status") == "ok" and not b.get("flags")
            and (b.get("check") or {}).get("ok", False)
            and ((b.get("times") or {}).get(pass_) or {}).get("median_ms") is not None)


def _ms(b, pass_):
    return b["times"][pass_]["median_ms"]


def fastest(entry, pass_, exclude=()):
    """{'backend', 'ms', 'speedup' (SDPA math's time over it, None without an eligible math),
    'ours_vs_other' (fastest other backend's time over attnjit's)} or None."""
    bs = entry["backends"]
    cands = [(n, _ms(b, pass_)) for n, b in bs.items() if n not in exclude and eligible(b, pass_)]
    if not cands:
        return None
    name, ms = min(cands, key=lambda c: c[1])
    base = bs.get(BASELINE)
    speedup = _ms(base, pass_) / ms if base and eligible(base, pass_) else None
    others = [m for n, m in cands if n != OURS]
    ours = bs.get(OURS)
    ratio = min(others) / _ms(ours, pass_) if ours and eligible(ours, pass_) and others else None
    return {"backend": name, "ms": ms, "speedup": speedup, "ours_vs_other": ratio}


# ---- Tables ------------------------------------------------------------------------------------

def _labels(doc):
    return dict(doc.get("backends") or BACKENDS)


def _names(doc):
    return [n for n, _ in (doc.get("backends") or BACKENDS)]


def _status_text(b):
    return {"unsupported": "unsupported", "error": "error"}.get(b.get("status"), "—")


def tf_text(x):
    """TFLOP/s as the tables print it: whole numbers, two significant digits below 10."""
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def cell(b, pass_, best_name, name):
    """ms (TFLOP/s, % of peak), bold when fastest, prefixed by flags; or why there is none."""
    if b is None:
        return "not run"
    t = ((b.get("times") or {}).get(pass_) or {}).get("median_ms")
    if b.get("status") != "ok" or t is None:
        return _status_text(b)
    tf, pct = b.get("tflops", {}).get(pass_), b.get("pct_peak", {}).get(pass_)
    ms = f"**{t:.4f}**" if name == best_name else f"{t:.4f}"
    extra = ""
    if tf is not None:
        extra = f" ({tf_text(tf)}" + (f", {pct:.0f}%)" if pct is not None else ")")
    flags = " ".join(b.get("flags") or [])
    return (flags + " " if flags else "") + ms + extra


def seed_table(doc, entry):
    """The seed's table for one configuration, plus TFLOP/s and % of peak in every cell."""
    labels, names = _labels(doc), _names(doc)
    head = ["Pass"] + [f"{labels[n]} (ms)" for n in names] + [
        f"Best Speedup (vs {labels.get(BASELINE, BASELINE)})",
        f"{labels.get(OURS, OURS)} vs fastest other"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for p in PASSES:
        best = entry.get("best", {}).get(p)
        best_name = best["backend"] if best else None
        row = [PASS_TITLES[p]] + [cell(entry["backends"].get(n), p, best_name, n) for n in names]
        if best is None:
            row.append("none (every backend flagged or unsupported)")
        elif best["speedup"] is None:
            row.append(f"— ({labels[best_name]})")
        else:
            row.append(f"**{best['speedup']:.2f}x** ({labels[best_name]})")
        ratio = best and best.get("ours_vs_other")
        row.append(f"{ratio:.2f}x" if ratio else "—")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _config(entry):
    c = dict(entry["config"])
    for k in ("key", "hidden", "dqk", "dv", "q_latent"):
        c.pop(k, None)
    return Config(**c)


def _entries(doc, level, causal):
    return [e for e in doc["results"] if e["level"] == level and e["causal"] == causal]


def _levels_and_masks(doc):
    levels = [lv for lv in LEVELS if any(e["level"] == lv for e in doc["results"])]
    masks = [c for c in (False, True) if any(e["causal"] == c for e in doc["results"])]
    return levels, masks


def header_lines(doc):
    m = doc["meta"]
    peak = m.get("peak", {})
    lines = [
        f"- **GPU**: {m.get('card', '?')} ({m.get('sms', '?')} SMs, driver {m.get('driver', '?')})",
        f"- **Date**: {m.get('date', '?')}; **PyTorch** {m.get('torch', '?')}, CUDA "
        f"{m.get('cuda', '?')}, cuDNN {m.get('cudnn', '?')}; **attnjit** {m.get('attnjit', '?')}",
        f"- **Measured peak**: {tf_text(peak.get('tflops') or 0)} TFLOP/s "
        f"({peak.get('what', 'bf16 GEMM')})",
        f"- **Command**: `{m.get('command', '?')}`",
    ]
    for r in m.get("earlier_runs", []):
        lines.append(f"- **Earlier run merged here** ({r.get('timestamp', '?')}, peak "
                     f"{tf_text(r.get('peak_tflops') or 0)} TFLOP/s): `{r.get('command', '?')}`")
    if m.get("wall_s") is not None:
        lines.append(f"- **Wall time**: {m['wall_s']:.0f} s, of which first calls (compilation) "
                     f"{m.get('first_call_s', 0):.0f} s and fp64 references "
                     f"{m.get('reference_s', 0):.0f} s")
    return lines


METHOD = """\
Every backend runs on the same GPU in the same process, on the same random bf16 inputs, timed the
same way: CUDA events around each call after warm-up, median of the calls, L2 flushed before each
call, calls queued behind a GPU sleep so that the times are the GPU's. Layers use the same
`torch.nn.functional.linear` GEMMs (cuBLASLt) for every backend; only the attention differs.
Outputs and gradients (layers: of x and every weight) are checked against an fp64 reference in
the same run: |backend - fp64| <= 2x (forward) or 3x (gradients) the error of a plain bf16
implementation, plus a small floor. FAIL: the check failed; OVER-PEAK: a time implies more than
the measured peak. Neither is ever called the fastest. FLOPs: attention 2*B*H*S^2*(Dqk+Dv)
forward (half when causal), backward 2.5x; layers add 2*M*N*K per GEMM, twice that backward."""


def render_tables(doc):
    """tables.md: the seed's layout (level, mask, type, configuration), every cell
    'ms (TFLOP/s, % of peak)'."""
    out = ["# Seed benchmark: attention core and layers", ""] + header_lines(doc) + [
        "", METHOD, "", "Cells: median ms (TFLOP/s, % of measured peak); **bold**: fastest "
        "unflagged backend.", ""]
    levels, masks = _levels_and_masks(doc)
    for level in levels:
        for causal in masks:
            entries = _entries(doc, level, causal)
            if not entries:
                continue
            mask = "causal" if causal else "non-causal"
            out += ["---", "", f"# {LEVEL_TITLES[level]}, {mask}", ""]
            for kind in KINDS:
                es = [e for e in entries if e["kind"] == kind]
                if not es:
                    continue
                out += [f"## {KIND_TITLES[kind]}", ""]
                for e in es:
                    out += [f"### {_config(e).title()}", "", seed_table(doc, e), ""]
    return "\n".join(out).rstrip() + "\n"


def summary_cell(b, name, entry):
    """'fwd / bwd' TFLOP/s, the fastest bold, flags or status in place of a number."""
    if b is None:
        return "not run"
    if b.get("status") != "ok":
        return _status_text(b)
    if b.get("flags"):
        return "/".join(b["flags"])
    parts = []
    for p in ("fwd", "bwd"):
        tf = b.get("tflops", {}).get(p)
        best = entry.get("best", {}).get(p)
        if tf is None:
            parts.append("—")
        elif best and best["backend"] == name:
            parts.append(f"**{tf_text(tf)}**")
        else:
            parts.append(tf_text(tf))
    return " / ".join(parts)


def summary_table(doc, level, causal):
    labels, names = _labels(doc), _names(doc)
    head = ["type", "config"] + [labels[n] for n in names] + [
        "fastest fwd / bwd", f"{labels.get(OURS, OURS)} vs fastest other fwd / bwd"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for e in _entries(doc, level, causal):
        row = [e["kind"], _config(e).shape()]
        row += [summary_cell(e["backends"].get(n), n, e) for n in names]
        best = [e.get("best", {}).get(p) for p in ("fwd", "bwd")]
        row.append(" / ".join(labels[b["backend"]] if b else "none" for b in best))
        row.append(" / ".join(f"{b['ours_vs_other']:.2f}x" if b and b.get("ours_vs_other")
                              else "—" for b in best))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def render_summary(doc):
    """summary.md (and the README's 'Latest results'): TFLOP/s forward / backward per
    configuration and backend, one table per level and mask."""
    out = header_lines(doc) + ["", "Cells: TFLOP/s forward / backward; **bold**: fastest "
                               "unflagged backend; tables.md has the times.", ""]
    levels, masks = _levels_and_masks(doc)
    for level in levels:
        for causal in masks:
            if not _entries(doc, level, causal):
                continue
            out += [f"**{LEVEL_TITLES[level]}, {'causal' if causal else 'non-causal'}**", "",
                    summary_table(doc, level, causal), ""]
    return "\n".join(out).rstrip() + "\n"


def entry_key(e):
    return (e["level"], e["kind"], e["index"], bool(e["causal"]))


def merge_runs(old_doc, new_doc):
    """--append: new_doc plus old_doc's results that new_doc did not re-run, in the seed's order
    (kind, index, mask, level); old_doc's run is listed in meta.earlier_runs."""
    fresh = {entry_key(e) for e in new_doc["results"]}
    kept = [e for e in old_doc.get("results", []) if entry_key(e) not in fresh]
    om = old_doc.get("meta", {})
    runs = list(om.get("earlier_runs", [])) + [{
        "command": om.get("command"), "timestamp": om.get("timestamp"),
        "peak_tflops": om.get("peak", {}).get("tflops"), "wall_s": om.get("wall_s")}]
    if kept:
        new_doc["meta"]["earlier_runs"] = runs
    order = {k: i for i, k in enumerate(KINDS)}
    new_doc["results"] = sorted(kept + new_doc["results"], key=lambda e: (
        order.get(e["kind"], 99), e["index"], bool(e["causal"]), LEVELS.index(e["level"])))
    both = {b[0]: list(b) for b in old_doc.get("backends", []) + new_doc.get("backends", [])}
    rank = {n: i for i, (n, _) in enumerate(BACKENDS)}
    new_doc["backends"] = sorted(both.values(), key=lambda b: rank.get(b[0], len(rank)))
    return new_doc


# ---- Naming ------------------------------------------------------------------------------------

def card_slug(name):
    """'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3'."""
    s = re.sub(r"^(nvidia|amd)\s+", "", name.strip(), flags=re.I).lower()
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return s or "gpu"


def results_dir_name(card, when=None):
    when = when or datetime.date.today()
    return f"{when.isoformat()}-{card_slug(card)}"


# ---- Errors and JSON ---------------------------------------------------------------------------

_UNSUPPORTED = re.compile(r"no available kernel|no viable backend|not supported|unsupported|"
                          r"only support|does not support|not implemented", re.I)


def classify_error(type_name, message, warnings=()):
    """(status, reason) for a backend that raised: 'unsupported' when the library says it cannot
    run the shape (SDPA's 'No available kernel' with its warnings saying why, attnjit's
    UnsupportedError, NotImplementedError), else 'error' (out of memory, a crash, a bug)."""
    first = (message or "").strip().splitlines()
    text = f"{type_name}: {first[0] if first else ''}".strip()[:300]
    why = []
    for w in warnings:
        line = str(w).strip().splitlines()[0][:200] if str(w).strip() else ""
        if line and line not in why:
            why.append(line)
    reason = text + ("; " + "; ".join(why[:4]) if why else "")
    if "OutOfMemory" in type_name or "out of memory" in (message or "").lower():
        return "error", reason
    if (type_name in ("UnsupportedError", "NotImplementedError")
            or _UNSUPPORTED.search(message or "") or any(_UNSUPPORTED.search(w) for w in why)):
        return "unsupported", reason
    return "error", reason


def jsonable(obj):
    """A copy of obj that strict JSON accepts: NaN and infinities become strings."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else str(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj
