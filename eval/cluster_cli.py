"""`harken eval cluster`: gateways, workers, Redis and PostgreSQL started on loopback, real calls streamed in real
time, a worker killed mid-call; reports lost and duplicated finals, how long captions paused, latency per
gateway (eval/cluster.py; docs/cluster.md)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="multi-process cluster on loopback with a worker killed mid-call")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--gateways", type=int, default=2, help="sessions stream to one gateway, are followed on the next")
    p.add_argument("--sessions", type=int, default=4, help="concurrent calls (English dev calls, cycled)")
    p.add_argument("--out", type=Path, required=True, help="JSON report")
    p.add_argument("--kill-at", type=float, default=0.45,
                   help="SIGKILL the busiest worker at this fraction of the shortest call (0: no kill)")
    p.add_argument("--restart-broker-at", type=float, default=0.0,
                   help="also stop Redis for a second and start it again at this fraction (0: not)")
    p.add_argument("--kill-gateway-at", type=float, default=0.0,
                   help="also SIGKILL the last gateway at this fraction; its subscribers resume on another (0: not)")
    p.add_argument("--max-channels", type=int, default=4, help="channels per worker (a call has two)")
    p.add_argument("--max-call-s", type=float, default=None, help="cut each call to this many seconds")
    p.add_argument("--waves", type=int, default=1,
                   help="rounds of --sessions calls back to back (faults in the first; memory sampled after each)")
    p.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    p.add_argument("--keep-files", action="store_true",
                   help="keep each process's log and data directory (their path is logged at the end)")
    p.add_argument("--classifiers", action="store_true",
                   help="run the intent/emotion classifiers on the workers too (off: captions and compliance)")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from eval.cluster import Fault, run_cluster_eval

    fractions = (args.kill_at, args.restart_broker_at, args.kill_gateway_at)
    if args.workers < 1 or args.gateways < 1 or args.sessions < 1 or args.waves < 1 or not all(0 <= f < 1 for f in fractions):
        log.error("bad arguments")
        return 2
    if args.kill_at and args.workers < 2:
        log.error("killing a worker needs another to take its sessions over (--workers 2 or more)")
        return 2
    if args.kill_gateway_at and args.gateways < 2:
        log.error("killing a gateway needs another for its subscribers (--gateways 2 or more)")
        return 2
    faults = [Fault("kill-worker", args.kill_at)] if args.kill_at else []
    if args.restart_broker_at:
        faults.append(Fault("restart-broker", args.restart_broker_at))
    if args.kill_gateway_at:
        faults.append(Fault("kill-gateway", args.kill_gateway_at))
    env = {} if args.classifiers else {"HARKEN_CLASSIFIERS": "false"}
    report = run_cluster_eval(workers=args.workers, gateways=args.gateways, sessions=args.sessions,
                              faults=faults, max_channels=args.max_channels,
                              max_call_s=args.max_call_s, database=args.database, env=env, waves=args.waves,
                              keep_files=args.keep_files)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    summary = {k: v for k, v in report.items() if k != "per_session"}
    print(json.dumps(summary, indent=2))
    ok = report["finals_lost"] == 0 and report["finals_duplicated"] == 0 and \
        report["sessions_ended"] == report["sessions"]
    return 0 if ok else 1
