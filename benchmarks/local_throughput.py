"""Throughput of the embedded local model: plain single-sequence generate vs batched LocalTransport.

    python benchmarks/local_throughput.py [--prompts 16] [--single-prompts 4] [--repeats 2]
    python benchmarks/local_throughput.py --prompt-tokens 150,1000 --batch-sizes 4 --grouping both --skip-plain

Few-shot prompts (~600 tokens) are built from ../shared/corpora/peps.jsonl; each request
asks for 64 new tokens (temperature 0.8, top_p 0.95, no stop strings). Every setting runs
``--repeats`` times and the best wall time is reported, since the CPU may be shared.
One-at-a-time settings (plain generate, batch_size=1) run the first ``--single-prompts``
prompts only: they are sequential, so tokens/s does not depend on how many run. The
script also reports how many texts equal those of the same requests at batch size 1 and
at the first batched size (the reproducibility check: only the float rounding of
batched matmuls can differ). ``--prompt-tokens`` takes a comma list to mix prompt lengths
(cycled over the prompts), and ``--grouping both`` runs each batch size twice: batches in
arrival order, and the transport's grouping of waiting requests by length.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import torch

from persrm_gen.llm.transports.local import LocalTransport
from persrm_gen.llm.transports.local_model import EMBEDDED_MODEL_ID, embedded_model_dir
from persrm_gen.llm.types import LLMRequest

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "peps.jsonl"


def build_prompts(corpus: Path, tokenizer, count: int, targets: list[int]) -> list[str]:
    """One few-shot prompt per author: their samples until ~target tokens, then an open slot."""
    authors = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    prompts = []
    for k, author in enumerate(authors[:count]):
        target_tokens = targets[k % len(targets)]
        header = f"Writing samples by {author.get('name') or author['author_id']}.\n\n"
        parts, used = [header], len(tokenizer(header)["input_ids"])
        for sample in author["samples"]:
            words = sample["text"].split()
            chunk = " ".join(words[: max(20, (target_tokens - used) * 3 // 4)])
            piece = f"Sample:\n{chunk}\n\n"
            parts.append(piece)
            used += len(tokenizer(piece, add_special_tokens=False)["input_ids"])
            if used >= target_tokens - 40:
                break
        parts.append("Sample:\n")
        prompts.append("".join(parts))
    return prompts


def requests_for(prompts: list[str], new_tokens: int) -> list[LLMRequest]:
    return [
        LLMRequest(model=EMBEDDED_MODEL_ID, prompt=p, max_tokens=new_tokens, temperature=0.8, top_p=0.95, seed=i)
        for i, p in enumerate(prompts)
    ]


def run_plain(model, tokenizer, prompts: list[str], new_tokens: int) -> tuple[float, int]:
    """Reference: transformers generate, one prompt at a time, its own sampling.

    Runs in a worker thread like LocalTransport does: on an oversubscribed CPU, torch's
    OpenMP pool in the main thread ran 2-6x slower than in a worker thread, which would
    make the comparison about threading rather than batching.
    """

    def work() -> tuple[float, int]:
        started, produced = time.perf_counter(), 0
        with torch.inference_mode():
            for prompt in prompts:
                ids = tokenizer(prompt, return_tensors="pt")
                out = model.generate(**ids, max_new_tokens=new_tokens, do_sample=True, temperature=0.8, top_p=0.95)
                produced += out.shape[1] - ids["input_ids"].shape[1]
        return time.perf_counter() - started, produced

    return asyncio.run(asyncio.to_thread(work))


def run_transport(transport: LocalTransport, requests: list[LLMRequest]):
    async def go():
        return await asyncio.gather(*(transport.send(r) for r in requests))

    started = time.perf_counter()
    responses = asyncio.run(go())
    return time.perf_counter() - started, responses


class _Table:
    """Prints one markdown row per setting as soon as it is measured."""

    def __init__(self, prompt_tokens: list[int]):
        self.prompt_tokens = prompt_tokens

    def add(self, name: str, count: int, seconds: float, produced: int, note: str) -> None:
        total = produced + sum(self.prompt_tokens[:count])
        print(f"| {name} | {count} | {seconds:.1f} | {produced / seconds:.1f} | {total / seconds:.0f} "
              f"| {os.getloadavg()[0]:.1f} | {note} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--prompt-tokens", default="600", help="comma list: prompt lengths to cycle through")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--single-prompts", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--grouping", choices=["on", "off", "both"], default="on",
                        help="group waiting requests by prompt length (the default) or batch them in arrival order")
    args = parser.parse_args()

    started = time.perf_counter()
    folder = embedded_model_dir(print)
    print(f"model folder ready in {time.perf_counter() - started:.1f} s: {folder}")
    transport = LocalTransport(folder, device="cpu", max_wait_ms=50)
    started = time.perf_counter()
    transport.load()
    print(f"reload from safetensors: {time.perf_counter() - started:.1f} s; torch threads {torch.get_num_threads()}, "
          f"os.cpu_count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    prompts = build_prompts(args.corpus, transport.tokenizer, args.prompts,
                            [int(t) for t in args.prompt_tokens.split(",")])
    requests = requests_for(prompts, args.new_tokens)
    prompt_tokens = [len(transport.tokenizer(p)["input_ids"]) for p in prompts]
    print(f"{len(prompts)} prompts, {min(prompt_tokens)}-{max(prompt_tokens)} tokens "
          f"(mean {sum(prompt_tokens) / len(prompts):.0f}), {args.new_tokens} new tokens each\n")

    print(f"| setting | prompts | wall s (best of {args.repeats}) | new tokens/s | prompt+new tokens/s "
          "| load avg | identical texts |")
    print("|---|---:|---:|---:|---:|---:|---|", flush=True)
    rows = _Table(prompt_tokens)
    single = prompts[: args.single_prompts]
    if not args.skip_plain:
        best = min(run_plain(transport.model, transport.tokenizer, single, args.new_tokens) for _ in range(args.repeats))
        rows.add("plain generate, 1 sequence", len(single), best[0], best[1], "")
    reference: dict[str, list[str]] = {}  # setting -> texts
    groupings = {"on": [True], "off": [False], "both": [False, True]}[args.grouping]
    default_pool = transport.pool_batches
    for size in (int(s) for s in args.batch_sizes.split(",")):
        for grouped in groupings if size > 1 else [True]:
            # A pool of one batch is arrival order; the transport's default looks further ahead.
            transport.pool_batches = default_pool if grouped else 1
            transport.batch_size = size
            todo = requests[: args.single_prompts] if size == 1 else requests
            runs = [run_transport(transport, todo) for _ in range(args.repeats)]
            seconds = min(r[0] for r in runs)
            texts = [x.text for x in runs[0][1]]
            produced = sum(x.output_tokens for x in runs[0][1])
            notes = [] if all([x.text for x in r[1]] == texts for r in runs) else ["NOT stable across repeats"]
            for other, ref in reference.items():
                same = sum(a == b for a, b in zip(texts, ref))
                notes.append(f"{same}/{min(len(texts), len(ref))} = {other}")
            name = f"batch {size}" + ("" if size == 1 else ", by length" if grouped else ", arrival order")
            reference[name] = texts
            rows.add(f"LocalTransport {name}", len(todo), seconds, produced, "; ".join(notes))


if __name__ == "__main__":
    main()
