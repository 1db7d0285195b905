"""Why chats train on the answers only by default: the same short run with and without prompt masking.

A generated mlx model (``tiny_mlx``; ``--hidden``/``--layers`` pick its size) is LoRA-tuned through
``train_lora`` on a 20-line chat set whose every answer is "hello world!", for 40 iterations at
learning rate 1e-3 (rank 8, every layer, batch 4, seed 0): once on the answers only (the default)
and once on everything (``mask_prompt=False``, what ``--train-on-prompt`` does). Each adapter then
answers questions it never saw, greedily. Printed: each run's trained tokens, final losses and
answers, and ``answer_loss_ratio``: the mean loss of the tokens of "hello world!" after the unseen
questions without masking over that with masking (above 1: masking learned the answer better).

Usage: ``python -m bench.tune_masking [--iters 40] [--hidden 64 --layers 2]``; the last line reads
``masked_learned=… unmasked_learned=… … ok=…``; exit 1 if the masked run does not learn the answer
on every unseen question.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script (bench/run_all.py) or with -m from the repo root
    sys.path.insert(0, str(ROOT))

from tests.fixtures.tuning_data import HELLO_QUESTIONS  # noqa: E402 - after the path is set

ANSWER = "hello world!"
UNSEEN = [
    "what is your name?",
    "tell me about the sea.",
    "is it night?",
    "pick a fruit.",
    "how old is the tree?",
    "do you like water?",
    "read me a page.",
    "when is tomorrow?",
]


def build(root: Path, hidden: int, layers: int) -> tuple[Path, Path]:
    from macapp.core.tuning.datasets import write_jsonl
    from macapp.core.tuning.tiny_mlx import write_tiny_mlx

    model = write_tiny_mlx(
        root / "model",
        hidden=hidden,
        layers=layers,
        heads=max(2, hidden // 64),
        kv_heads=max(2, hidden // 64),
        ff=hidden * 2,
    )
    data = write_jsonl(
        root / "hello.jsonl",
        [
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}]}
            for q in HELLO_QUESTIONS
        ],
    )
    return model, data


def answers(model: Path, adapter: Path) -> tuple[list[str], float]:
    """Greedy answers to the unseen questions, and the mean loss (nats a token) of "hello world!" after them."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm import generate, load
    from mlx_lm.sample_utils import make_sampler

    lm, tok = load(str(model), adapter_path=str(adapter))
    out, losses = [], []
    for question in UNSEEN:
        prompt = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
        out.append(generate(lm, tok, prompt=prompt, max_tokens=8, sampler=make_sampler(temp=0.0)).strip())
        chat = [{"role": "user", "content": question}, {"role": "assistant", "content": ANSWER}]
        full = tok.apply_chat_template(chat, return_dict=False)
        ids = mx.array(full)[None]
        logits = lm(ids[:, :-1])[0, len(prompt) - 1 :]
        losses.append(nn.losses.cross_entropy(logits, ids[0, len(prompt) :]).mean().item())
    return out, sum(losses) / len(losses)


def run(model: Path, data: Path, name: str, mask: bool | None, iters: int) -> tuple[list[str], float, int, float]:
    from macapp.core.progress import drain
    from macapp.core.tuning.train import TrainOptions, train_lora

    opts = TrainOptions(
        base=model,
        data=data,
        name=name,
        rank=8,
        layers=-1,
        learning_rate=1e-3,
        iters=iters,
        batch_size=4,
        max_seq_length=128,
        mask_prompt=mask,
        steps_per_report=10,
        steps_per_eval=iters,
        save_every=0,
        valid_fraction=0.2,
        seed=0,
        check_memory=False,
    )
    seen, result = drain(train_lora(opts))
    trained = [p.trained_tokens for p in seen if p.stage == "training"][-1]
    said, answer_loss = answers(model, result.adapter.path)
    return said, answer_loss, trained, result.train_loss


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["MACAPP_HOME"] = str(root / "home")
        model, data = build(root, args.hidden, args.layers)
        learned, loss = {}, {}
        for label, mask in (("answers only (default)", None), ("everything (--train-on-prompt)", False)):
            said, loss[mask], trained, train_loss = run(
                model, data, "masked" if mask is None else "unmasked", mask, args.iters
            )
            learned[mask] = sum(s == ANSWER for s in said)
            print(
                f"{label}: {trained:,} trained tokens, train loss {train_loss:.3f}, loss of the answer after "
                f"unseen questions {loss[mask]:.3f}; greedy answers: {said}",
                flush=True,
            )
    masked, unmasked = learned[None], learned[False]
    ok = masked == len(UNSEEN)
    print(
        f"masked_learned={masked}/{len(UNSEEN)} unmasked_learned={unmasked}/{len(UNSEEN)} "
        f"answer_loss_ratio={loss[False] / loss[None]:.2f} iters={args.iters} ok={ok}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
