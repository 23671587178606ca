"""`harken eval broker`: publish throughput, delivery latency, replay time and memory of NATS JetStream and
Redis Streams, each a real server started on loopback for the run (eval/broker_bench.py; docs/broker.md)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help="NATS JetStream vs Redis Streams for gateway<->worker events (real servers)")
    p.add_argument("--out", type=Path, required=True, help="JSON report")
    p.add_argument("--events", type=int, default=20_000, help="durable events per broker and phase")
    p.add_argument("--sessions", type=int, default=20, help="concurrent sessions")
    p.add_argument("--rate", type=float, default=500.0, help="events/s of the paced (latency) phase")
    p.add_argument("--brokers", default="nats,redis,harken-redis",
                   help="comma-separated: nats, redis (raw clients), harken-redis (pipelines/broker_redis.py)")
    p.add_argument("--repeat", type=int, default=1, help="rounds, alternating the brokers' order (noisy machines)")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from eval.broker_bench import run_bench, summary_rows

    kinds = tuple(k.strip() for k in args.brokers.split(",") if k.strip())
    bad = [k for k in kinds if k not in ("nats", "redis", "harken-redis")]
    if bad or args.events < 1 or args.sessions < 1 or args.rate <= 0 or args.repeat < 1:
        log.error("bad arguments: brokers %s, events %d, sessions %d, rate %s", bad, args.events, args.sessions,
                  args.rate)
        return 2
    report = run_bench(kinds, args.events, args.sessions, args.rate, args.repeat)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for row in summary_rows(report):
        print(row)
    return 0 if all("skipped" not in r for r in report["results"]) else 1
