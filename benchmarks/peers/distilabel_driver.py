"""One batch through distilabel's OpenAILLM (run in its own venv).

    benchmarks/.envs/distilabel/bin/python benchmarks/peers/distilabel_driver.py '<spec json>'

distilabel sends a step's input batch concurrently (asyncio.gather in AsyncLLM.generate) and
the next batch only when the whole batch is back, so the in-flight level is the batch size:
this is what a pipeline step with input_batch_size=conc does, minus the pipeline's own
process and queue overhead (so it is distilabel's best case).
"""

from __future__ import annotations

from _spec import now, read_spec, report

started = now()

from distilabel.models.llms import OpenAILLM  # noqa: E402


def main() -> None:
    spec = read_spec()
    llm = OpenAILLM(model=spec.model, base_url=spec.base, api_key="EMPTY", timeout=30)
    llm.load()
    inputs = spec.messages()
    ok = 0
    t0 = now()
    for i in range(0, len(inputs), spec.conc):
        for out in llm.generate_outputs(inputs=inputs[i:i + spec.conc], num_generations=1,
                                        max_new_tokens=64):
            ok += bool(out["generations"][0])
    t1 = now()
    report(started, t0, t1, ok)


if __name__ == "__main__":
    main()
