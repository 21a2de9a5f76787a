#!/usr/bin/env python3
"""Engine benchmark: pdp vs Cedar (cedarpy) vs Casbin (FastEnforcer).

For each policy-set size, generates the same rules in the three languages
(bench/policygen.py) and a set of requests, checks that the three engines agree
on every request, then times each decision individually with
``time.perf_counter_ns()`` over the requests, several rounds after a warm-up,
and prints a table: size, engine, compile/load time, p50 and p99 per decision,
decisions/s, and the p50 ratio to pdp.

    .venv/bin/python bench/engine.py                       # full run
    .venv/bin/python bench/engine.py --quick               # smoke run, seconds
    .venv/bin/python bench/engine.py --sizes 10,1000 --engines pdp,cedar --rounds 3

See bench/README.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import policygen as gen  # noqa: E402
from benchhost import cpu_model  # noqa: E402

perf_ns = time.perf_counter_ns

ALL_ENGINES = ("pdp", "cedar", "casbin")


# --------------------------------------------------------------------------- engines
#
# Each engine adapter has: load(workload) -> seconds, prepare(requests) -> list of
# prepared requests (outside the timing), decide_all(prepared) -> list of bools,
# and time_all(prepared, samples) appending one duration (ns) per decision, where
# only the engine's own decision call sits between the two clock reads.


class PdpEngine:
    name = "pdp"

    def __init__(self):
        try:
            from pdp import compile_policies
        except ImportError:
            from pdp.engine import compile_policies
        self._compile = compile_policies
        try:
            from pdp.lang.values import parse_timestamp
        except ImportError:                       # pragma: no cover
            parse_timestamp = None
        self._ts = parse_timestamp
        # The first compile in a process builds the parser; do it once here so
        # the compile times in the table are those of the policies.
        t0 = perf_ns()
        compile_policies({"warm.policy": 'policy "w" {\n  permit read on x\n}\n'})
        self.parser_build_s = (perf_ns() - t0) / 1e9
        self.note = ""

    def load(self, w) -> float:
        files = gen.render_pdp_files(w.policies)
        self.source_files = files
        t0 = perf_ns()
        self.ps = self._compile(files)
        return (perf_ns() - t0) / 1e9

    def prepare(self, reqs):
        out = []
        for r in reqs:
            # context.time is a Timestamp, as the service sets it; ip is text.
            t = self._ts(r.time) if self._ts else r.time
            out.append({
                "subject": dict(r.subject),
                "action": r.action,
                "resource": {"type": r.resource_type, "id": r.resource_id, "attributes": dict(r.resource)},
                "context": {"time": t, "ip": r.ip},
            })
        return out

    def decide_all(self, prepared):
        decide = self.ps.decide
        res = []
        errors = 0
        self.determining = det = []
        for q in prepared:
            d = decide(q)
            errors += len(d.errors)
            res.append(d.decision == "allow")
            det.append(frozenset(d.policies))
        self.note = f"{errors} evaluation errors" if errors else ""
        return res

    def explain(self, q):
        d = self.ps.decide(q)
        return {k: getattr(d, k, None) for k in ("decision", "policies", "errors", "determining")}

    def time_all(self, prepared, samples):
        decide = self.ps.decide
        append = samples.append
        for q in prepared:
            t0 = perf_ns()
            decide(q)
            append(perf_ns() - t0)


class CedarEngine:
    name = "cedar"

    def __init__(self):
        import cedarpy
        self.cedarpy = cedarpy
        self.note = ""

    def load(self, w) -> float:
        cp = self.cedarpy
        text = gen.render_cedar(w.policies)
        self.source = text
        t0 = perf_ns()
        self.ps = cp.PolicySet.from_str(text)
        load = (perf_ns() - t0) / 1e9
        ents = json.dumps(gen.cedar_entities(w.requests))
        t1 = perf_ns()
        self.entities = cp.Entities.from_json_str(ents)
        self.entities_s = (perf_ns() - t1) / 1e9
        assert len(self.ps) == len(w.policies), (len(self.ps), len(w.policies))
        self.note = f"entities {self.entities_s * 1000:.0f} ms"
        return load

    def prepare(self, reqs):
        return [gen.cedar_request(r) for r in reqs]

    def decide_all(self, prepared):
        is_authorized, ps, ents = self.cedarpy.is_authorized, self.ps, self.entities
        allow = self.cedarpy.Decision.Allow
        res = []
        self.determining = det = []
        for q in prepared:
            r = is_authorized(q, ps, ents)
            if r.diagnostics.errors:
                raise RuntimeError(f"cedar evaluation errors: {r.diagnostics.errors[:3]}")
            res.append(r.decision == allow)
            det.append(frozenset(r.diagnostics.id_annotations_by_reason.values()))
        return res

    def explain(self, q):
        r = self.cedarpy.is_authorized(q, self.ps, self.entities)
        return {"decision": r.decision.value, "policies": sorted(r.diagnostics.id_annotations_by_reason.values()),
                "errors": r.diagnostics.errors}

    def time_all(self, prepared, samples):
        is_authorized, ps, ents = self.cedarpy.is_authorized, self.ps, self.entities
        append = samples.append
        for q in prepared:
            t0 = perf_ns()
            is_authorized(q, ps, ents)
            append(perf_ns() - t0)


class CasbinEngine:
    name = "casbin"

    def __init__(self):
        import casbin
        self.casbin = casbin
        self.note = ""

    def load(self, w) -> float:
        cb = self.casbin
        rows = gen.casbin_rows(w.policies)
        t0 = perf_ns()
        from casbin.model import FastModel
        model = FastModel(gen.CASBIN_KEY_ORDER)
        model.load_model_from_text(gen.CASBIN_MODEL)
        e = cb.FastEnforcer(model, cache_key_order=gen.CASBIN_KEY_ORDER)
        e.add_function("hour", gen.casbin_hour)
        e.add_policies(rows)
        load = (perf_ns() - t0) / 1e9
        self.e = e
        self.note = f"{len(rows)} rows"
        return load

    def prepare(self, reqs):
        return [gen.casbin_request(r) for r in reqs]

    def decide_all(self, prepared):
        enforce = self.e.enforce
        return [bool(enforce(*q)) for q in prepared]

    def explain(self, q):
        from casbin.model import fast_policy_filter
        with fast_policy_filter(self.e.model.model["p"]["p"].policy, q[0], q[1]):
            ok, row = self.e.enforce_ex(*q)
        return {"decision": "allow" if ok else "deny", "row": row[4] if row else None}

    def time_all(self, prepared, samples):
        enforce = self.e.enforce
        append = samples.append
        for q in prepared:
            t0 = perf_ns()
            enforce(*q)
            append(perf_ns() - t0)


NOTES = """\
Notes
- decisions/s = measured decisions / sum of their individual times (one thread).
- ratio = engine p50 / pdp p50 at the same size.
- pdp: compile_policies(files) once; decide(request) timed; context.time is a Timestamp.
- Cedar: cedarpy.is_authorized(request, PolicySet, Entities) with the policies and the
  entities (one principal + one resource per request) parsed once, uids as dicts and the
  context pre-serialised JSON; 'entities' is the Entities parse time. Cedar evaluates
  every policy: its scope (action, `resource is T`) is not an index.
- Casbin: FastEnforcer indexed on (resource type, action), matcher `eval(p.rule)`,
  effect allow-and-deny (deny overrides); load = model + add_policies.
Where the Casbin (and Cedar) translation is not exact, and what was done instead
- `*` (any action / any type): Casbin's index has no wildcard bucket, so each policy
  is one row per (type, action) and `*` is expanded to the 20 known types and 5 known
  actions. Same decisions here; a type or action outside those lists would not meet
  the org-wide policies in Casbin, while pdp's `*` matches anything.
- hour(context.time): Casbin has no time-of-day built-in; a Python `hour()` is
  registered with add_function (UTC). Cedar: context.time.toTime() compared with
  duration("Nh") (exact in UTC).
- cidr_contains: Casbin's ipMatch (exact); Cedar ip(...).isInRange (exact).
- when/unless: Casbin rule `(when) and not (unless)`; Cedar has both clauses.
- A list of two resource types: Cedar `resource is A || resource is B` inside `when`.
- Roles: claims in the token, so membership tests on an attribute list in all three
  (`"r" in r.sub.roles`), not Casbin's g() role graph.
- Evaluation errors are not comparable: pdp skips an erroring permit and applies an
  erroring forbid (fail closed); Cedar skips any erroring policy, forbid included;
  Casbin raises for the whole request. Every generated request carries every
  attribute, so none of the three meets an error (Cedar errors would abort the run).
- Casbin answers allow/deny only: no list of determining policies or reasons."""


ENGINE_CLASSES = {"pdp": PdpEngine, "cedar": CedarEngine, "casbin": CasbinEngine}


# --------------------------------------------------------------------------- helpers

def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(round(q / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def machine_info() -> dict:
    versions = {}
    for mod in ("cedarpy", "casbin"):
        try:
            from importlib.metadata import version
            versions[mod] = version(mod)
        except Exception:
            versions[mod] = "?"
    return {"nproc": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
            "date": date.today().isoformat(), **versions}


def fmt_us(ns: float) -> str:
    us = ns / 1000
    return f"{us:,.1f}" if us < 100 else f"{us:,.0f}"


def fmt_s(s: float) -> str:
    return f"{s * 1000:,.1f} ms" if s < 1 else f"{s:,.2f} s"


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000,10000", help="policy-set sizes (comma-separated)")
    ap.add_argument("--requests", type=int, default=1000, help="requests per size")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds over the requests")
    ap.add_argument("--engines", default="pdp,cedar,casbin", help="engines to run (comma-separated)")
    ap.add_argument("--seed", type=int, default=42, help="generator seed")
    ap.add_argument("--budget", type=float, default=10.0,
                    help="seconds of timed decisions per engine and size; slower engines get fewer "
                         "rounds, then fewer requests (the table says so) [default 10]")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: sizes 10,100, 200 requests, 2 rounds, 2 s budget")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    ap.add_argument("--show-disagreements", type=int, default=5,
                    help="print up to N disagreeing requests per size [default 5]")
    ap.add_argument("--dump", metavar="DIR", help="write the generated policies (all three languages) to DIR")
    args = ap.parse_args(argv)
    if args.quick:
        if "--sizes" not in (argv or sys.argv):
            args.sizes = "10,100"
        if "--requests" not in (argv or sys.argv):
            args.requests = 200
        if "--rounds" not in (argv or sys.argv):
            args.rounds = 2
        if "--budget" not in (argv or sys.argv):
            args.budget = 2.0
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in args.engines:
        if e not in ENGINE_CLASSES:
            ap.error(f"unknown engine {e!r} (choose from {', '.join(ALL_ENGINES)})")
    return args


def dump(w, size, outdir: Path):
    d = outdir / f"size-{size}"
    (d / "pdp").mkdir(parents=True, exist_ok=True)
    for name, text in gen.render_pdp_files(w.policies).items():
        p = d / "pdp" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (d / "policies.cedar").write_text(gen.render_cedar(w.policies))
    with open(d / "casbin_policy.csv", "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        for row in gen.casbin_rows(w.policies):
            out.writerow(["p", *row])
    (d / "casbin_model.conf").write_text(gen.CASBIN_MODEL.lstrip())


def run(args) -> dict:
    info = machine_info()
    print(f"# pdp engine benchmark — {info['date']}")
    print(f"# machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}; "
          f"cedarpy {info['cedarpy']}, casbin {info['casbin']}")
    print(f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"# sizes {','.join(map(str, args.sizes))}; {args.requests} requests; {args.rounds} rounds; "
          f"seed {args.seed}; budget {args.budget:g} s per engine and size")
    print()

    engines = {}
    for name in args.engines:
        try:
            engines[name] = ENGINE_CLASSES[name]()
        except ImportError as exc:
            print(f"! engine {name} unavailable: {exc}", file=sys.stderr)
    if "pdp" in engines:
        print(f"# pdp: the first compile in the process builds the parser "
              f"({engines['pdp'].parser_build_s * 1000:.0f} ms); done before, not in the compile times\n")
    results = []
    agreement = []
    for size in args.sizes:
        t0 = time.perf_counter()
        w = gen.generate(size, args.requests, args.seed)
        if args.dump:
            dump(w, size, Path(args.dump))
        print(f"## size {size}: {len(w.policies)} policies "
              f"({sum(p.effect == 'forbid' for p in w.policies)} forbids, "
              f"{sum(p.kind == 'org' for p in w.policies)} org-wide on *), "
              f"{len(w.requests)} requests (generated in {time.perf_counter() - t0:.2f} s)")

        loaded, prepared, decisions, first_pass_ns = {}, {}, {}, {}
        for name, eng in engines.items():
            load_s = eng.load(w)
            loaded[name] = load_s
            prepared[name] = eng.prepare(w.requests)
            # Sanity pass (doubles as the first warm-up pass).
            t1 = perf_ns()
            decisions[name] = eng.decide_all(prepared[name])
            first_pass_ns[name] = (perf_ns() - t1) / max(1, len(w.requests))
            print(f"  {name:7s} loaded in {fmt_s(load_s)}"
                  f"{' (' + eng.note + ')' if eng.note else ''}; first pass "
                  f"{first_pass_ns[name] / 1000:,.1f} µs/decision; "
                  f"allow rate {sum(decisions[name]) / max(1, len(decisions[name])):.1%}")

        # Agreement.
        names = list(decisions)
        agree_row = {"size": size, "requests": len(w.requests)}
        if len(names) > 1:
            ref = names[0]
            all_agree = sum(1 for i in range(len(w.requests))
                            if len({decisions[n][i] for n in names}) == 1)
            agree_row["all"] = all_agree / len(w.requests)
            for n in names[1:]:
                same = sum(a == b for a, b in zip(decisions[ref], decisions[n]))
                agree_row[f"{ref}~{n}"] = same / len(w.requests)
            pair = ", ".join(f"{k} {v:.2%}" for k, v in agree_row.items() if "~" in k)
            print(f"  agreement: all engines {agree_row['all']:.2%} ({all_agree}/{len(w.requests)}); {pair}")
            if "pdp" in engines and "cedar" in engines:
                a, b = engines["pdp"].determining, engines["cedar"].determining
                same = sum(x == y for x, y in zip(a, b))
                agree_row["determining pdp~cedar"] = same / len(w.requests)
                print(f"  determining policies (ids) identical in pdp and Cedar: {same / len(w.requests):.2%}")
            shown = 0
            for i in range(len(w.requests)):
                if len({decisions[n][i] for n in names}) != 1 and shown < args.show_disagreements:
                    shown += 1
                    r = w.requests[i]
                    print(f"    ! request {i}: " + ", ".join(
                        f"{n}={'allow' if decisions[n][i] else 'deny'}" for n in names))
                    print(f"      {r.action} {r.resource_type} subject={r.subject} resource={r.resource} "
                          f"time={r.time} ip={r.ip}")
                    for n in names:
                        print(f"      {n}: {engines[n].explain(prepared[n][i])}")
        agreement.append(agree_row)

        # Timing.
        for name, eng in engines.items():
            reqs = prepared[name]
            est_ns = max(first_pass_ns[name], 1.0)
            budget_ns = args.budget * 1e9
            rounds = args.rounds
            n_req = len(reqs)
            capped = ""
            # Slow engines: fewer rounds first, then fewer requests, to stay in the budget.
            while rounds > 1 and rounds * n_req * est_ns > budget_ns:
                rounds -= 1
            if rounds * n_req * est_ns > budget_ns:
                n_req = max(50, int(budget_ns / est_ns))
                n_req = min(n_req, len(reqs))
            if rounds < args.rounds or n_req < len(reqs):
                capped = "*"
            # An evenly spaced subset when capped, so it has the same mix as the whole.
            subset = reqs if n_req == len(reqs) else [reqs[i * len(reqs) // n_req] for i in range(n_req)]
            # Warm-up: the sanity pass above ran every request once already; one
            # more pass over the subset for the fast engines.
            if n_req * est_ns < budget_ns / 4:
                eng.time_all(subset, [])
            samples: list[int] = []
            gc.collect()
            for _ in range(rounds):
                eng.time_all(subset, samples)
            samples.sort()
            total = sum(samples)
            row = {
                "size": size, "engine": name, "policies": len(w.policies), "load_s": loaded[name],
                "p50_ns": pct(samples, 50), "p99_ns": pct(samples, 99),
                "mean_ns": total / len(samples),
                "decisions_per_s": len(samples) / (total / 1e9),
                "measured": f"{n_req}×{rounds}{capped}", "capped": bool(capped),
                "note": eng.note,
            }
            results.append(row)
        print()

    # Ratios vs pdp (median), then the table.
    pdp_p50 = {r["size"]: r["p50_ns"] for r in results if r["engine"] == "pdp"}
    for r in results:
        base = pdp_p50.get(r["size"])
        r["ratio"] = r["p50_ns"] / base if base else None
    print_table(results)
    if any(r["capped"] for r in results):
        print("\n* measured on fewer requests or rounds than asked, to keep the run within "
              f"--budget {args.budget:g} s per engine and size (all requests were still "
              "decided once in the agreement pass)")
    print(f"\n# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(NOTES)
    return {"machine": info, "args": {k: v for k, v in vars(args).items()},
            "results": results, "agreement": agreement}


def print_table(results):
    header = ["size", "engine", "compile/load", "p50 µs", "p99 µs", "decisions/s", "vs pdp (p50)", "measured"]
    rows = []
    for r in results:
        ratio = "" if r["ratio"] is None else ("1.0×" if r["engine"] == "pdp" else f"{r['ratio']:,.1f}×")
        rows.append([f"{r['size']:,}", r["engine"], fmt_s(r["load_s"]), fmt_us(r["p50_ns"]),
                     fmt_us(r["p99_ns"]), f"{r['decisions_per_s']:,.0f}", ratio, r["measured"]])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    right = {0, 2, 3, 4, 5, 6, 7}

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    print(line(header))
    print("|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2))
                         for i, w in enumerate(widths)) + "|")
    for row in rows:
        print(line(row))


def main(argv=None) -> int:
    args = parse_args(argv)
    out = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
