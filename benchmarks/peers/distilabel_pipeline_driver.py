"""One batch through a distilabel Pipeline (LoadDataFromDicts >> ChatGeneration), in its venv.

    benchmarks/.envs/distilabel/bin/python benchmarks/peers/distilabel_pipeline_driver.py '<spec json>'

This is how distilabel is used in practice: each step runs in its own process and the
ChatGeneration step sends its input batch (input_batch_size = the in-flight level) concurrently,
the next batch when the whole batch is back. The timed part is ``pipeline.run`` (process start,
batching, writing the Distiset), with distilabel's cache off so every request goes out.
"""

from __future__ import annotations

from _spec import now, read_spec, report

started = now()

from distilabel.models.llms import OpenAILLM  # noqa: E402
from distilabel.pipeline import Pipeline  # noqa: E402
from distilabel.steps import LoadDataFromDicts  # noqa: E402
from distilabel.steps.tasks import ChatGeneration  # noqa: E402


def main() -> None:
    import logging
    import tempfile

    # distilabel silences the "httpx" logger, but openai 3.x logs every request through
    # "httpx2" at INFO, which distilabel 1.5.3 never knew; silence it the same way.
    logging.getLogger("httpx2").setLevel(logging.CRITICAL)

    spec = read_spec()
    with tempfile.TemporaryDirectory() as cache:
        with Pipeline(name="peers-bench", cache_dir=cache) as pipeline:
            load = LoadDataFromDicts(data=[{"messages": m} for m in spec.messages()], batch_size=spec.conc)
            chat = ChatGeneration(llm=OpenAILLM(model=spec.model, base_url=spec.base, api_key="EMPTY", timeout=30),
                                  input_batch_size=spec.conc)
            load >> chat
        t0 = now()
        distiset = pipeline.run(use_cache=False, parameters={
            chat.name: {"llm": {"generation_kwargs": {"max_new_tokens": 64}}}})
        t1 = now()
        ok = sum(1 for r in distiset["default"]["train"] if r["generation"])
    report(started, t0, t1, ok)


if __name__ == "__main__":
    main()
