"""PNG charts for bench/seed_bench.py: TFLOP/s per configuration and backend, forward and
backward, one figure per level and mask, from the results document (needs matplotlib only).
Flagged results (FAIL, OVER-PEAK) are drawn hatched with a red edge; a backend that could not
run a shape gets 'n/a' at the foot of its slot; the dashed line is the measured peak."""
import os

import seed_bench_logic as logic

COLORS = {"attnjit": "#d62728", "math": "#7f7f7f", "flash": "#1f77b4", "efficient": "#9467bd",
          "cudnn": "#2ca02c", "flex": "#ff7f0e"}


def render(doc, out_dir):
    """Writes core.png, core-causal.png, layer.png, layer-causal.png (those with results);
    returns their file names."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.patches as mpatches
    import matplotlib.pyplot as plt

    meta = doc["meta"]
    peak = meta.get("peak", {}).get("tflops")
    backends = [tuple(b) for b in doc.get("backends") or logic.BACKENDS]
    files = []
    levels = [lv for lv in logic.LEVELS if any(e["level"] == lv for e in doc["results"])]
    for level in levels:
        for causal in (False, True):
            entries = [e for e in doc["results"] if e["level"] == level and e["causal"] == causal]
            if not entries:
                continue
            fig, axes = plt.subplots(2, 1, figsize=(max(10, 1.0 * len(entries) + 4), 8.5),
                                     sharex=True)
            width = 0.8 / len(backends)
            for ax, p in zip(axes, ("fwd", "bwd")):
                top = peak or 0
                for j, (name, _label) in enumerate(backends):
                    offset = (j - (len(backends) - 1) / 2) * width
                    for i, e in enumerate(entries):
                        b = e["backends"].get(name) or {}
                        tf = (b.get("tflops") or {}).get(p)
                        x = i + offset
                        if b.get("status") != "ok" or tf is None:
                            ax.text(x, 0, "n/a", rotation=90, fontsize=6, ha="center",
                                    va="bottom", color="#555555")
                            continue
                        flagged = bool(b.get("flags"))
                        ax.bar(x, tf, width, color=COLORS.get(name, "#17becf"),
                               alpha=0.35 if flagged else 1.0, hatch="xx" if flagged else None,
                               edgecolor="red" if flagged else "none", linewidth=0.8)
                        top = max(top, tf)
                if peak:
                    ax.axhline(peak, ls="--", lw=1, color="black")
                    ax.text(len(entries) - 0.5, peak, f"measured peak {logic.tf_text(peak)}",
                            va="bottom", ha="right", fontsize=8)
                ax.set_ylim(0, top * 1.12 if top else 1)
                ax.set_ylabel(f"{logic.PASS_TITLES[p]} TFLOP/s")
                ax.grid(axis="y", alpha=0.3)
            labels = [f"{e['kind']}-{e['index']}\n"
                      f"{logic.Config(**_fields(e['config'])).shape().replace(' ', chr(10), 1)}"
                      for e in entries]
            axes[-1].set_xticks(range(len(entries)))
            axes[-1].set_xticklabels(labels, fontsize=7)
            handles = [mpatches.Patch(color=COLORS.get(n, "#17becf"), label=lbl)
                       for n, lbl in backends]
            handles.append(mpatches.Patch(facecolor="white", edgecolor="red", hatch="xx",
                                          label="flagged (FAIL / OVER-PEAK)"))
            fig.legend(handles=handles, ncol=len(handles), fontsize=8, loc="upper center",
                       bbox_to_anchor=(0.5, 0.955), frameon=False)
            mask = "causal" if causal else "non-causal"
            fig.suptitle(f"{logic.LEVEL_TITLES[level]}, {mask}, bf16: {meta.get('card', '?')}, "
                         f"{meta.get('date', '?')}", fontsize=11)
            fig.tight_layout(rect=(0, 0, 1, 0.93))
            name = f"{level}{'-causal' if causal else ''}.png"
            fig.savefig(os.path.join(out_dir, name), dpi=110)
            plt.close(fig)
            files.append(name)
    return files


def _fields(config):
    return {k: v for k, v in config.items() if k not in ("key", "hidden", "dqk", "dv", "q_latent")}
