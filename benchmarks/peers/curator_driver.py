"""One batch through bespokelabs-curator's OpenAI online processor (run in its own venv).

    benchmarks/.envs/curator/bin/python benchmarks/peers/curator_driver.py '<spec json>'

max_concurrent_requests is the in-flight level; the rpm/tpm limits are set far above what
the loopback can reach (as for our client), so curator's limiter runs but never binds.
"""

from __future__ import annotations

from _spec import now, read_spec, report

started = now()

from bespokelabs import curator  # noqa: E402


class Chat(curator.LLM):
    def prompt(self, row: dict) -> list[dict[str, str]]:
        return row["messages"]


def main() -> None:
    import tempfile

    spec = read_spec()
    rows = [{"messages": m} for m in spec.messages()]
    llm = Chat(model_name=spec.model, backend="openai", generation_params={"max_tokens": 64},
               backend_params={"base_url": spec.base, "api_key": "EMPTY",
                               "max_concurrent_requests": spec.conc,
                               "max_requests_per_minute": 10_000_000,
                               "max_tokens_per_minute": 10_000_000_000,
                               "request_timeout": 30})
    with tempfile.TemporaryDirectory() as work:
        t0 = now()
        out = llm(rows, working_dir=work)  # builds the dataset, sends, writes responses to disk
        t1 = now()
        ok = sum(1 for r in out.dataset if r.get("response"))
    report(started, t0, t1, ok)


if __name__ == "__main__":
    main()
