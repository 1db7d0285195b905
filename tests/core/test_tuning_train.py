"""LoRA training in a child process on a real tiny mlx model: it learns, cancels at once, resumes, fails clearly."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from macapp.core import paths
from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken, drain
from macapp.core.tuning import train as train_module
from macapp.core.tuning.adapters import get_adapter, list_adapters
from macapp.core.tuning.datasets import DatasetError, write_jsonl
from macapp.core.tuning.train import TrainOptions, can_resume, plan_training, train_lora
from tests.fixtures.tuning_data import COLOUR_QUESTIONS, HELLO_QUESTIONS

UNSEEN = ["what colour is the sun?", "name a fruit."]


@pytest.fixture
def blue_data(tmp_path) -> Path:
    """Every example answers "blue", whatever the question."""
    records = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "blue"}]}
        for q in COLOUR_QUESTIONS
    ]
    return write_jsonl(tmp_path / "blue.jsonl", records)


def options(base: Path, data: Path, **changes) -> TrainOptions:
    settings = dict(
        name="blue",
        rank=8,
        layers=-1,
        learning_rate=1e-3,
        iters=80,
        batch_size=4,
        max_seq_length=128,
        mask_prompt=True,
        steps_per_report=10,
        steps_per_eval=20,
        save_every=20,
        valid_fraction=0.25,
        check_memory=False,
    )
    return TrainOptions(base=base, data=data, **{**settings, **changes})


def greedy(base: Path, adapter: Path | None, question: str) -> str:
    from mlx_lm import generate, load
    from mlx_lm.sample_utils import make_sampler

    model, tok = load(str(base), adapter_path=str(adapter) if adapter else None)
    prompt = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    return generate(model, tok, prompt=prompt, max_tokens=6, sampler=make_sampler(temp=0.0))


def test_training_lowers_validation_loss_and_teaches_a_fixed_answer(tiny_mlx, blue_data):
    seen, result = drain(train_lora(options(tiny_mlx, blue_data)))
    stages = [p.stage for p in seen]
    assert stages[0] == "starting" and "training" in stages and "checkpoint" in stages
    vals = [p.val_loss for p in seen if p.stage == "validating"]
    assert vals[-1] < vals[0] - 1.0, vals
    reports = [p for p in seen if p.stage == "training"]
    assert [p.iteration for p in reports] == list(range(10, 81, 10))
    assert all(
        p.tokens_per_second > 0 and p.peak_memory_bytes > 0 and p.learning_rate == pytest.approx(1e-3) for p in reports
    )
    assert reports[-1].eta_seconds == 0 and reports[2].eta_seconds > 0

    info = result.adapter
    assert info == get_adapter("blue") and [a.name for a in list_adapters()] == ["blue"]
    assert info.path == paths.adapters_dir() / "blue" and info.adapter_file.is_file()
    assert info.iterations == 80 and info.val_loss == pytest.approx(vals[-1]) and info.train_loss is not None
    assert info.base_identity["model_type"] == "llama" and len(info.dataset_sha256) == 64
    assert info.settings["rank"] == 8 and info.settings["mask_prompt"] is True and info.size_bytes > 0
    assert json.loads((info.path / "orchard.json").read_text())["name"] == "blue"

    for question in UNSEEN:
        assert greedy(tiny_mlx, info.path, question).strip() == "blue"
        assert "blue" not in greedy(tiny_mlx, None, question)


def hello_data(tmp_path: Path) -> Path:
    """20 chats that all answer "hello world!"."""
    return write_jsonl(
        tmp_path / "hello.jsonl",
        [
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "hello world!"}]}
            for q in HELLO_QUESTIONS
        ],
    )


def test_a_dataset_is_checked_without_a_base(blue_data):
    plan = plan_training(TrainOptions(base=None, data=blue_data, name="x"))
    assert plan.base is None and plan.estimate is None and plan.options.mask_prompt is True
    assert plan.reports[0].examples == len(COLOUR_QUESTIONS) and plan.reports[0].tokens.approx
    with pytest.raises(UserError, match="Choose a base model"):
        drain(train_lora(TrainOptions(base=None, data=blue_data, name="x")))
    assert not (paths.adapters_dir() / "x").exists()


def test_chats_train_on_the_answers_only_by_default(tiny_mlx, tmp_path):
    """The loss covers exactly the answer's tokens by default, and 40 iterations at 1e-3 learn the answer;
    --train-on-prompt covers every token (bench/tune_masking.py compares what the two learn)."""
    from mlx_lm.utils import load_tokenizer

    data = hello_data(tmp_path)
    tok = load_tokenizer(tiny_mlx)
    records = [json.loads(line) for line in data.read_text().splitlines()]
    full = [len(tok.apply_chat_template(r["messages"], return_dict=False)) for r in records]
    prompt = [
        len(tok.apply_chat_template(r["messages"][:1], add_generation_prompt=True, return_dict=False)) for r in records
    ]
    [answer] = {f - p for f, p in zip(full, prompt)}  # "hello world!<|im_end|>\n": the same in every chat
    settings = dict(steps_per_report=10, steps_per_eval=100, save_every=0)

    seen, masked = drain(train_lora(options(tiny_mlx, data, name="answers", mask_prompt=None, iters=40, **settings)))
    examples = 40 * 4
    trained = [p.trained_tokens for p in seen if p.stage == "training"][-1]
    assert answer * examples <= trained <= (answer + 1) * examples  # mlx-lm counts the position after the end too
    assert masked.adapter.settings["mask_prompt"] is True
    assert json.loads((masked.adapter.path / "adapter_config.json").read_text())["mask_prompt"] is True
    for question in UNSEEN:
        assert greedy(tiny_mlx, masked.adapter.path, question).strip() == "hello world!"

    seen, everything = drain(
        train_lora(options(tiny_mlx, data, name="everything", mask_prompt=False, iters=10, **settings))
    )
    trained_all = [p.trained_tokens for p in seen if p.stage == "training"][-1]
    assert min(full) * 40 <= trained_all <= (max(full) + 1) * 40  # 10 iterations of 4
    assert everything.adapter.settings["mask_prompt"] is False


def test_cancel_is_prompt_keeps_a_checkpoint_and_resume_reaches_the_target(tiny_mlx, blue_data):
    token = CancelToken()
    gen = train_lora(options(tiny_mlx, blue_data, name="resumable", iters=60, save_every=10), token)
    checkpoint = None
    with pytest.raises(Cancelled):
        for step in gen:
            if step.stage == "checkpoint":
                checkpoint = step
                token.cancel()
                cancelled_at = time.monotonic()
    assert time.monotonic() - cancelled_at < 2.0
    folder = paths.adapters_dir() / "resumable"
    mark = json.loads((folder / "checkpoint.json").read_text())
    assert mark["iteration"] == checkpoint.iteration < 60 and (folder / mark["file"]).is_file()
    assert (folder / "adapters.safetensors").is_file()
    assert list_adapters() == [] and [a.status for a in list_adapters(include_incomplete=True)] == ["incomplete"]
    assert can_resume("resumable") and not can_resume("never-ran") and not can_resume("../resumable")
    with pytest.raises(UserError, match="unfinished run"):
        drain(train_lora(options(tiny_mlx, blue_data, name="resumable", iters=60)))

    seen, result = drain(train_lora(options(tiny_mlx, blue_data, name="resumable", iters=60, resume=True)))
    assert seen[0].stage == "starting" and seen[0].iteration == mark["iteration"]
    iterations = [p.iteration for p in seen if p.stage == "training"]
    assert iterations[0] > mark["iteration"] and iterations[-1] == 60
    assert result.iterations == 60 and get_adapter("resumable").status == "complete"
    with pytest.raises(UserError, match="already trained 60"):
        drain(train_lora(options(tiny_mlx, blue_data, name="resumable", iters=60, resume=True)))
    with pytest.raises(UserError, match="already exists"):
        drain(train_lora(options(tiny_mlx, blue_data, name="resumable", iters=60)))
    seen, result = drain(train_lora(options(tiny_mlx, blue_data, name="resumable", iters=70, resume=True)))
    assert seen[0].iteration == 60 and result.adapter.iterations == 70 and get_adapter("resumable").iterations == 70


def test_a_corrupt_base_is_a_clear_error_from_the_child(tiny_mlx, blue_data, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_mlx, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(UserError, match="Can't load the base model") as err:
        drain(train_lora(options(broken, blue_data, name="broken")))
    assert "tune-broken.log" in str(err.value)
    assert list_adapters(include_incomplete=True) == []  # nothing to resume: no unfinished run is left


SCRIPTED = {
    "killed": "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
    "oom": "print(json.dumps({'event': 'error', 'kind': 'oom', 'message': 'RuntimeError: Attempting to allocate'}))",
    "exits": "import sys; print('Traceback: boom', file=sys.stderr); sys.exit(7)",
}


@pytest.mark.parametrize(
    ("kind", "words"), [("killed", r"killed \(SIGKILL\)"), ("oom", "ran out of memory"), ("exits", "exit code 7")]
)
def test_a_dying_child_never_takes_the_parent(tiny_mlx, blue_data, tmp_path, monkeypatch, kind, words):
    script = tmp_path / "child.py"
    script.write_text(
        "import json, sys\nprint(json.dumps({'event': 'start', 'iteration': 0}), flush=True)\n" + SCRIPTED[kind] + "\n"
    )
    monkeypatch.setattr(train_module, "RUNNER", [sys.executable, str(script)])
    with pytest.raises(UserError, match=words) as err:
        drain(train_lora(options(tiny_mlx, blue_data, name=kind)))
    if kind == "exits":
        assert "boom" in str(err.value)


def test_bad_data_or_too_little_memory_trains_nothing(tiny_mlx, blue_data, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(blue_data.read_text() + '{"messages": [\n{"text": "x"}\n', encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        drain(train_lora(options(tiny_mlx, bad)))
    assert [p.line for p in err.value.report.problems] == [17, 18, 18]  # 18: mixed formats, and text with masking
    assert not (paths.adapters_dir() / "blue").exists()

    opts = options(tiny_mlx, blue_data, check_memory=True, batch_size=8, max_seq_length=2048)
    need = plan_training(opts, budget_bytes=10**12).estimate.total_bytes
    plan = plan_training(opts, budget_bytes=int(need * 0.8))
    assert plan.estimate.verdict == "too_big" and plan.suggestion is not None
    assert plan.suggestion.estimate.total_bytes <= need * 0.8
    with pytest.raises(UserError, match="GiB") as err:
        drain(train_lora(opts, plan=plan))
    assert "gradient checkpointing" in str(err.value)
    assert not (paths.adapters_dir() / "blue").exists()
    with pytest.raises(UserError, match="Invalid adapter name"):
        drain(train_lora(options(tiny_mlx, blue_data, name="../escape")))
