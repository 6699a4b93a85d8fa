#!/usr/bin/env python3
"""The seed benchmark's CPU-side logic, without PyTorch or a GPU: configurations and layer
shapes, FLOP counting, the accuracy rule, flags and the fastest backend (never a flagged one),
the tables, `seed_bench.py --render`, and update_readme.py's splice.

    python3 bench/test_seed_bench_logic.py        # or: python3 -m unittest (from bench/)
"""
import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in bench/
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import seed_bench_logic as logic  # noqa: E402
import update_readme  # noqa: E402

GFLOP = 1e9


def backend(ms_fwd, ms_bwd, ms_total, ok=True, status="ok"):
    return {"status": status, "check": {"ok": ok, "tensors": {}},
            "times": {"fwd": {"median_ms": ms_fwd}, "bwd": {"median_ms": ms_bwd},
                      "total": {"median_ms": ms_total}}}


def entry(cfg, backends, level="core", causal=False):
    return {"level": level, "kind": cfg.kind, "index": cfg.index, "causal": causal,
            "config": cfg.as_dict(),
            "flops": {p: logic.flops(cfg, causal, level, p) for p in logic.PASSES},
            "backends": backends}


def config(key):
    return next(c for c in logic.seed_configs() if c.key == key)


class Configs(unittest.TestCase):
    def test_the_seeds_fifteen(self):
        cs = logic.seed_configs()
        self.assertEqual(len(cs), 15)
        self.assertEqual([c.key for c in cs[:3]], ["mhsa-1", "mhsa-2", "mhsa-3"])
        self.assertEqual({c.kind for c in cs}, set(logic.KINDS))
        mqa1 = config("mqa-1")
        self.assertEqual((mqa1.batch, mqa1.seqlen, mqa1.heads, mqa1.kv_heads, mqa1.head_dim),
                         (2, 2048, 16, 1, 64))
        self.assertEqual([c.latent for c in cs if c.kind == "mla"], [512, 1024, 2048])
        self.assertEqual(config("mla-3").hidden, 16384)

    def test_titles_follow_the_seed(self):
        self.assertEqual(config("mhsa-1").title(),
                         "Configuration 1: Batch=2, SeqLen=2048, Heads=12, HeadDim=64")
        self.assertEqual(config("gqa-2").title(),
                         "Configuration 2: Batch=1, SeqLen=4096, Heads=32, KVHeads=8, HeadDim=128")
        self.assertTrue(config("mla-1").title().startswith(
            "Configuration 1: Batch=2, SeqLen=2048, Heads=32, HeadDim=128, LatentDim=512"))

    def test_layer_weights(self):
        self.assertEqual(config("mhsa-2").weights(), [("w_qkv", 3 * 4096, 4096),
                                                      ("w_o", 4096, 4096)])
        self.assertEqual(config("gqa-1").weights(), [("w_q", 2048, 2048), ("w_k", 512, 2048),
                                                     ("w_v", 512, 2048), ("w_o", 2048, 2048)])
        self.assertEqual(config("mqa-3").weights()[1], ("w_k", 128, 5120))
        self.assertEqual(config("mla-1").weights(), [
            ("w_dq", 1536, 4096), ("w_uq", 4096, 1536), ("w_dkv", 512, 4096),
            ("w_ukv", 8192, 512), ("w_o", 4096, 4096)])
        rope = logic.seed_configs(rope=64)[12]
        self.assertEqual((rope.dqk, rope.dv), (192, 128))
        self.assertEqual(rope.weights()[1], ("w_uq", 32 * 192, 1536))
        self.assertEqual(rope.weights()[2], ("w_dkv", 512 + 64, 4096))
        self.assertEqual(logic.seed_configs(rope=64)[0].rope, 0)  # only MLA gets rope dims

    def test_selection(self):
        cs = logic.seed_configs()
        self.assertEqual(len(logic.select_configs(cs)), 15)
        self.assertEqual([c.key for c in logic.select_configs(cs, quick=True)],
                         list(logic.QUICK_KEYS))
        self.assertEqual([c.key for c in logic.select_configs(cs, "gqa,mha-2")],
                         ["gqa-1", "gqa-2", "gqa-3", "mha-2"])
        with self.assertRaises(ValueError):
            logic.select_configs(cs, "mha-4")


class Flops(unittest.TestCase):
    def test_attention(self):
        c = config("mha-2")  # B=1 S=4096 H=32 D=128
        self.assertAlmostEqual(logic.attention_flops(c, False, "fwd"), 4 * 32 * 4096 ** 2 * 128)
        self.assertAlmostEqual(logic.attention_flops(c, False, "bwd"),
                               2.5 * 4 * 32 * 4096 ** 2 * 128)
        self.assertAlmostEqual(logic.attention_flops(c, True, "fwd"), 2 * 32 * 4096 ** 2 * 128)
        self.assertAlmostEqual(logic.attention_flops(c, False, "total"),
                               3.5 * 4 * 32 * 4096 ** 2 * 128)
        mla = logic.seed_configs(rope=64)[13]  # B=1 S=4096 H=64, 192/128
        self.assertAlmostEqual(logic.attention_flops(mla, False, "fwd"),
                               2 * 64 * 4096 ** 2 * (192 + 128))

    def test_layer_adds_gemms(self):
        c = config("mha-2")
        gemm = 4 * 2 * 4096 * 4096 * 4096
        self.assertAlmostEqual(logic.gemm_flops(c, "fwd"), gemm)
        self.assertAlmostEqual(logic.gemm_flops(c, "bwd"), 2 * gemm)
        self.assertAlmostEqual(logic.flops(c, False, "layer", "fwd"),
                               gemm + logic.attention_flops(c, False, "fwd"))
        self.assertAlmostEqual(logic.flops(c, False, "core", "bwd"),
                               logic.attention_flops(c, False, "bwd"))
        mla = config("mla-1")  # M = 4096 rows
        expect = 2 * 4096 * (1536 * 4096 + 4096 * 1536 + 512 * 4096 + 8192 * 512 + 4096 * 4096)
        self.assertAlmostEqual(logic.gemm_flops(mla, "fwd"), expect)

    def test_the_seeds_impossible_backward(self):
        # The seed's MHSA configuration 2: Triton backward 0.91 ms is ~755 TFLOP/s of attention
        # alone, over an A100's 312.
        c = config("mhsa-2")
        tf = logic.attention_flops(c, False, "bwd") / 0.91e-3 / 1e12
        self.assertGreater(tf, 750)
        e = entry(c, {"math": backend(9.1, 15.6, 24.5), "flex": backend(8.9, 0.91, 9.7),
                      "flash": backend(3.6, 9.1, 12.6)})
        logic.annotate(e, 312.0)
        self.assertIn("OVER-PEAK", e["backends"]["flex"]["flags"])
        self.assertEqual(e["best"]["bwd"]["backend"], "flash")
        self.assertEqual(e["best"]["total"]["backend"], "flash")  # flagged for every pass


class Check(unittest.TestCase):
    def test_rule(self):
        self.assertAlmostEqual(logic.tolerance(0.01, 0.5, grad=False), 0.02 + 2e-3)
        self.assertAlmostEqual(logic.tolerance(0.01, 64.0, grad=True), 0.03 + 3e-3 * 64)
        self.assertTrue(logic.check_tensor(0.022, 0.01, 1.0, grad=False)["ok"])
        self.assertFalse(logic.check_tensor(0.023, 0.01, 1.0, grad=False)["ok"])
        self.assertFalse(logic.check_tensor(float("nan"), 0.01, 1.0, grad=True)["ok"])
        self.assertFalse(logic.check_tensor(0.0, 0.01, 1.0, grad=True, nans=3)["ok"])

    def test_subset(self):
        self.assertEqual(logic.subset_heads(1, 32, 32), ([0], [0, 10, 21, 31], [0, 10, 21, 31]))
        b, kv, q = logic.subset_heads(2, 32, 8)
        self.assertEqual((b, kv), ([0, 1], [0, 2, 5, 7]))
        self.assertEqual(q, [0, 1, 2, 3, 8, 9, 10, 11, 20, 21, 22, 23, 28, 29, 30, 31])
        self.assertEqual(logic.subset_heads(1, 40, 1), ([0], [0], list(range(40))))
        self.assertEqual(logic.subset_heads(2, 4, 2)[1], [0, 1])

    def test_classify(self):
        s, why = logic.classify_error("RuntimeError", "No available kernel. Aborting execution.",
                                      ["Flash attention does not support head dim 192"])
        self.assertEqual(s, "unsupported")
        self.assertIn("head dim 192", why)
        self.assertEqual(logic.classify_error("UnsupportedError", "head dim 48")[0], "unsupported")
        self.assertEqual(logic.classify_error(
            "RuntimeError", "No viable backend for scaled_dot_product_attention was found.")[0],
            "unsupported")
        self.assertEqual(logic.classify_error("OutOfMemoryError", "CUDA out of memory")[0],
                         "error")
        self.assertEqual(logic.classify_error("RuntimeError", "illegal memory access")[0],
                         "error")

    def test_jsonable(self):
        out = logic.jsonable({"a": float("nan"), "b": [float("inf"), 1.5], "c": (1, "x")})
        self.assertEqual(out, {"a": "nan", "b": ["inf", 1.5], "c": [1, "x"]})
        json.dumps(out, allow_nan=False)


def sample_doc():
    c1, c2 = config("mha-1"), config("gqa-1")
    e1 = entry(c1, {
        "attnjit": backend(0.10, 0.30, 0.40),
        "math": backend(1.50, 2.70, 3.70),
        "flash": backend(0.08, 0.25, 0.33, ok=False),            # fastest but wrong: FAIL
        "efficient": {"status": "unsupported", "reason": "RuntimeError: No available kernel"},
        "cudnn": backend(0.09, 0.28, 0.36),
        "flex": {"status": "error", "reason": "OutOfMemoryError: CUDA out of memory"},
    })
    e2 = entry(c2, {"attnjit": backend(0.3, 0.9, 1.2), "math": backend(4.0, 6.5, 9.9),
                    "flash": backend(0.35, 0.8, 1.1)}, level="layer", causal=True)
    doc = {"meta": {"card": "NVIDIA H100 80GB HBM3", "date": "2026-11-27", "peak":
                    {"tflops": 700.0, "what": "8192^3 bf16 GEMM"}, "command": "python3 x",
                    "timestamp": "2026-11-27T10:00:00"},
           "backends": [list(b) for b in logic.BACKENDS], "results": [e1, e2]}
    for e in doc["results"]:
        logic.annotate(e, 700.0)
    return doc


class Best(unittest.TestCase):
    def test_never_a_flagged_backend(self):
        e = sample_doc()["results"][0]
        self.assertEqual(e["backends"]["flash"]["flags"], ["FAIL"])
        for p in logic.PASSES:
            self.assertEqual(e["best"][p]["backend"], "cudnn")
        self.assertAlmostEqual(e["best"]["fwd"]["speedup"], 1.5 / 0.09)
        self.assertAlmostEqual(e["best"]["fwd"]["ours_vs_other"], 0.09 / 0.10)
        self.assertEqual(e["backends"]["efficient"]["flags"], [])

    def test_ours_can_win_and_baseline_may_be_missing(self):
        c = config("mha-1")
        e = entry(c, {"attnjit": backend(0.05, 0.2, 0.25), "math": backend(1, 1, 1, ok=False),
                      "cudnn": backend(0.09, 0.28, 0.36)})
        logic.annotate(e, 700.0)
        self.assertEqual(e["best"]["fwd"]["backend"], "attnjit")
        self.assertIsNone(e["best"]["fwd"]["speedup"])  # a failing baseline gives no speedup
        self.assertAlmostEqual(e["best"]["fwd"]["ours_vs_other"], 0.09 / 0.05)

    def test_nothing_eligible(self):
        c = config("mha-1")
        e = entry(c, {"attnjit": backend(0.1, 0.1, 0.1, ok=False),
                      "flash": {"status": "unsupported", "reason": "x"}})
        logic.annotate(e, 700.0)
        self.assertIsNone(e["best"]["fwd"])
        self.assertIn("none", logic.seed_table({"backends": logic.BACKENDS}, e))

    def test_missing_check_is_not_eligible(self):
        c = config("mha-1")
        b = backend(1.0, 1.0, 1.0)
        del b["check"]
        e = entry(c, {"flash": b})
        logic.annotate(e, 700.0)
        self.assertEqual(e["backends"]["flash"]["flags"], ["FAIL"])
        self.assertIsNone(e["best"]["fwd"])


class Append(unittest.TestCase):
    def test_merge_keeps_what_was_not_rerun(self):
        old = sample_doc()
        old["meta"]["command"] = "python3 bench/seed_bench.py --causal no"
        new = sample_doc()
        new["results"] = [copy.deepcopy(new["results"][1])]  # layer gqa-1 causal, re-run
        new["results"][0]["peak_tflops"] = 650.0
        new["backends"] = [b for b in new["backends"] if b[0] != "flex"]
        merged = logic.merge_runs(old, new)
        self.assertEqual([logic.entry_key(e) for e in merged["results"]],
                         [("core", "mha", 1, False), ("layer", "gqa", 1, True)])
        self.assertEqual(merged["results"][1]["peak_tflops"], 650.0)
        self.assertEqual(merged["meta"]["earlier_runs"][0]["command"],
                         "python3 bench/seed_bench.py --causal no")
        self.assertEqual([b[0] for b in merged["backends"]], [n for n, _ in logic.BACKENDS])
        self.assertIn("Earlier run merged here", logic.render_summary(merged))

    def test_entry_peak_wins(self):
        c = config("mha-1")
        e = entry(c, {"flash": backend(0.1, 0.3, 0.4)})
        e["peak_tflops"] = 200.0
        logic.annotate(e, 700.0)
        self.assertIn("OVER-PEAK", e["backends"]["flash"]["flags"])


class Tables(unittest.TestCase):
    def test_seed_table(self):
        doc = sample_doc()
        t = logic.seed_table(doc, doc["results"][0])
        lines = t.splitlines()
        self.assertEqual(len(lines), 5)
        self.assertTrue(lines[0].startswith("| Pass | attnjit (ms) | SDPA math (ms) |"))
        fwd = lines[2]
        self.assertTrue(fwd.startswith("| Forward | 0.1000 ("))
        self.assertIn("FAIL 0.0800", fwd)
        self.assertIn("unsupported", fwd)
        self.assertIn("| error |", fwd)
        self.assertIn("**0.0900**", fwd)
        self.assertIn(f"**{1.5 / 0.09:.2f}x** (SDPA cuDNN)", fwd)
        # TFLOP/s and % of peak of attnjit's forward
        tf = logic.attention_flops(config("mha-1"), False, "fwd") / 0.1e-3 / 1e12
        self.assertIn(f"0.1000 ({tf:.0f}, {100 * tf / 700:.0f}%)", fwd)

    def test_documents(self):
        doc = sample_doc()
        tables = logic.render_tables(doc)
        self.assertIn("## Multi-Head Attention (Separate Q/K/V)", tables)
        self.assertIn("### Configuration 1: Batch=2, SeqLen=2048, Heads=12, HeadDim=64", tables)
        self.assertIn("# Layer (projections + attention), causal", tables)
        self.assertIn("NVIDIA H100 80GB HBM3", tables)
        summary = logic.render_summary(doc)
        self.assertIn("| mha | B2 S2048 H12/12 D64 |", summary)
        self.assertIn("| FAIL |", summary)
        self.assertIn("unsupported", summary)
        self.assertIn("SDPA cuDNN / SDPA cuDNN", summary)
        self.assertIn("**Layer (projections + attention), causal**", summary)
        self.assertNotIn("None", summary)

    def test_naming(self):
        self.assertEqual(logic.card_slug("NVIDIA H100 80GB HBM3"), "h100-80gb-hbm3")
        self.assertEqual(logic.card_slug("NVIDIA A100-SXM4-40GB"), "a100-sxm4-40gb")
        import datetime
        self.assertEqual(logic.results_dir_name("NVIDIA H200", datetime.date(2026, 11, 27)),
                         "2026-11-27-h200")


class RenderAndReadme(unittest.TestCase):
    def test_render_without_torch(self):
        doc = sample_doc()
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "results.json"), "w") as f:
                json.dump(logic.jsonable(doc), f)
            r = subprocess.run([sys.executable, "-B", os.path.join(HERE, "seed_bench.py"),
                                "--render", d, "--no-charts"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            for name in ("tables.md", "summary.md", "results.json", "command.txt"):
                self.assertTrue(os.path.exists(os.path.join(d, name)), name)
            self.assertIn("| mha | B2 S2048 H12/12 D64 |", r.stdout)

            readme = os.path.join(d, "README.md")
            with open(readme, "w") as f:
                f.write(f"# x\n\n## Latest results\n\n{update_readme.BEGIN}\nold\n"
                        f"{update_readme.END}\n\n## After\n")
            self.assertEqual(update_readme.main([d, "--readme", readme]), 0)
            with open(readme) as f:
                text = f.read()
            self.assertNotIn("\nold\n", text)
            self.assertIn("| mha | B2 S2048 H12/12 D64 |", text)
            self.assertTrue(text.endswith("\n## After\n"))
            self.assertEqual(update_readme.main([d, "--readme", readme, "--check"]), 0)

    def test_splice(self):
        b, e = update_readme.BEGIN, update_readme.END
        text = f"a\n{b}\nold\n{e}\nz\n"
        once = update_readme.splice(text, "new\n")
        self.assertEqual(once, f"a\n{b}\nnew\n{e}\nz\n")
        self.assertEqual(update_readme.splice(once, "new"), once)
        with self.assertRaises(ValueError):
            update_readme.splice("no markers", "x")

    def test_latest(self):
        with tempfile.TemporaryDirectory() as root:
            for name, stamp in (("2026-11-26-h100", "2026-11-26T09:00:00"),
                                ("2026-11-27-h200", "2026-11-27T08:00:00"),
                                ("2026-11-27-h100", "2026-11-27T07:00:00")):
                os.makedirs(os.path.join(root, name))
                with open(os.path.join(root, name, "results.json"), "w") as f:
                    json.dump({"meta": {"timestamp": stamp}}, f)
                open(os.path.join(root, name, "summary.md"), "w").close()
            self.assertEqual(os.path.basename(update_readme.latest(root)), "2026-11-27-h200")


class Charts(unittest.TestCase):
    def test_charts(self):
        try:
            __import__("matplotlib")
        except ImportError:
            self.skipTest("matplotlib is not installed")
        import seed_bench_charts
        doc = copy.deepcopy(sample_doc())
        with tempfile.TemporaryDirectory() as d:
            files = seed_bench_charts.render(doc, d)
            self.assertEqual(files, ["core.png", "layer-causal.png"])
            for f in files:
                self.assertGreater(os.path.getsize(os.path.join(d, f)), 1000)


if __name__ == "__main__":
    unittest.main(verbosity=1)
