"""Cold start: ``python -m bench coldstart [--quick]``.

For each function (connect, disconnect, message, notify), a fresh interpreter set up as
Lambda sets one up: the working directory and first ``sys.path`` entry are the function's
folder (``/var/task``), then the layer (``layers/common``, ``/opt/python``); the template's
environment variables, ``LAMBDA_TASK_ROOT`` (so Powertools' Tracer is on, as with the
template's ``Tracing: Active``), fake credentials and a region. The child times

* ``import app``: what Lambda's *init phase* runs (module-level code: Powertools' Logger,
  Metrics and Tracer, the notify function's batch processors);
* ``+ build``: the application ``realtime.runtime.app(endpoint)`` builds lazily in the
  *first invocation* (DynamoDB and SQS clients, the sender), plus the connect function's
  token verifier (from ``JWT_SECRET``; the deployed template reads Secrets Manager instead,
  a network round trip not measured here);

and its peak RSS, against the baseline: ``import boto3`` plus a DynamoDB and an API Gateway
management client (what the AWS samples' handlers do at init). Rounds are interleaved (each
configuration once per round) and the figures are medians. ``python -X importtime`` then
names the imports that dominate, and what this project imports that the baseline does not.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict

from bench import common
from bench.common import LAYER, ROOT, measured_line, median, table

FUNCTIONS = ("connect", "disconnect", "message", "notify")
ENDPOINT = "https://abcdef1234.execute-api.us-east-1.amazonaws.com/prod"
TARGET = 1.1

CHILD = r"""
import os, sys, time, json, resource
t0 = time.perf_counter()
mode, fn_dir, layer, allowed = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
sys.path[:0] = [fn_dir, layer]
if allowed:
    # Only what the deployed layer holds: the dev venv also has moto, requests, ... which
    # Lambda would not find (X-Ray's patch_all would otherwise import requests).
    allowed = set(allowed.split(","))
    stdlib = sys.stdlib_module_names
    class LayerOnly:
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if path is None and top not in allowed and top not in stdlib and not top.startswith("_"):
                raise ModuleNotFoundError(f"No module named {name!r} (not in the layer)", name=name)
            return None
    sys.meta_path.insert(0, LayerOnly())
if mode == "baseline":
    import boto3
    t1 = time.perf_counter()
    boto3.client("dynamodb")
    boto3.client("apigatewaymanagementapi", endpoint_url=os.environ["WEBSOCKET_ENDPOINT"])
else:
    import app
    t1 = time.perf_counter()
    from realtime import runtime
    if hasattr(app, "notifier"):
        app.notifier()
    else:
        runtime.app(runtime.settings().websocket_endpoint)
    if mode == "connect":
        runtime.verifier()
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "build": t2 - t0,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "modules": len(sys.modules)}))
"""


def layer_modules() -> str:
    """Top-level modules of the layer's requirements and their dependencies (with extras), comma-separated."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted: list[Requirement] = []
    for line in (LAYER / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            wanted.append(Requirement(line))
    seen: set[str] = set()
    while wanted:
        req = wanted.pop()
        name = canonicalize_name(req.name)
        key = name + "[" + ",".join(sorted(req.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            deps = requires(req.name) or []
        except PackageNotFoundError:
            continue
        for dep in deps:
            d = Requirement(dep)
            envs = [{"extra": e} for e in (req.extras or {""})]
            if d.marker is None or any(d.marker.evaluate(e) for e in envs):
                wanted.append(d)
    tops = {top for top, dists in packages_distributions().items()
            if any(canonicalize_name(d) in seen for d in dists)}
    return ",".join(sorted(tops | {"app", "realtime", "monitor"}))


def lambda_env(function: str, tracing: bool = True) -> dict[str, str]:
    """The environment Lambda gives the function (template values; fake credentials)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHON")) and k not in ("LAMBDA_TASK_ROOT", "JWT_SECRET")}
    fn_dir = str(ROOT / "functions" / function)
    env.update({
        "CONNECTIONS_TABLE": "realtime-ConnectionsTable-ABC", "DOCUMENTS_TABLE": "realtime-DocumentsTable-ABC",
        "COMMENTS_TABLE": "realtime-CommentsTable-ABC", "REALTIME_APP": "monitor",
        "PHASES": "view,edit,review", "PRESENCE_TTL_SECONDS": "60", "ALLOWED_ORIGINS": "",
        "WEBSOCKET_ENDPOINT": ENDPOINT, "JWT_SECRET": "bench-secret-that-is-at-least-32-bytes-long",
        "DOCUMENT_FIELDS": "slug,title,abstract,image", "FANOUT_PAGE_SIZE": "1000",
        "FANOUT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/realtime-FanoutQueue",
        "POWERTOOLS_SERVICE_NAME": "realtime", "POWERTOOLS_METRICS_NAMESPACE": "ServerlessRealtime",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLEEXAMPLE12", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEJr" + "Q" * 900, "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_NAME": f"realtime-{function}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LAMBDA_TASK_ROOT": fn_dir, "LANG": "en_US.UTF-8",
    })
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


_LAYER_MODULES: list[str] = []


def run_child(config: str, importtime: bool = False) -> tuple[dict, str]:
    """One fresh interpreter; returns (figures, stderr)."""
    if not _LAYER_MODULES:
        _LAYER_MODULES.append(layer_modules())
    function, _, variant = config.partition(":")
    mode = "baseline" if function == "baseline" else function
    fn = "message" if function == "baseline" else function
    fn_dir = str(ROOT / "functions" / fn)
    cmd = [sys.executable] + (["-X", "importtime"] if importtime else []) + ["-c", CHILD, mode, fn_dir, str(LAYER),
                                                                            _LAYER_MODULES[0]]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=fn_dir, env=lambda_env(fn, tracing=variant != "notrace"),
                         capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{config}: child failed\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["wall"] = wall
    return figures, out.stderr


_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def parse_importtime(stderr: str) -> list[tuple[str, int, float, float]]:
    """(module, depth, self ms, cumulative ms) per imported module, in import order."""
    rows = []
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if m:
            rows.append((m.group(4), (len(m.group(3)) - 1) // 2, int(m.group(1)) / 1000, int(m.group(2)) / 1000))
    return rows


def package_of(module: str) -> str:
    return module.split(".")[0]


def importtime_profile(config: str, runs: int) -> dict[str, dict[str, float]]:
    """Median over `runs` of per-module self and cumulative ms under -X importtime."""
    selfs: dict[str, list[float]] = defaultdict(list)
    cums: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        _, err = run_child(config, importtime=True)
        for name, _depth, s, c in parse_importtime(err):
            selfs[name].append(s)
            cums[name].append(c)
    return {name: {"self": median(selfs[name]), "cum": median(cums[name])} for name in selfs}


def run(quick: bool = False, write_doc: bool | None = None) -> dict:
    rounds = 2 if quick else 9
    it_runs = 1 if quick else 3
    configs = ["baseline"] + list(FUNCTIONS) + ["message:notrace"]
    print(f"cold-start benchmark: {rounds} interleaved rounds of {len(configs)} fresh interpreters")
    samples: dict[str, list[dict]] = {c: [] for c in configs}
    run_child("baseline")  # warm the page cache: the first run reads every .pyc from disk
    for i in range(rounds):
        for config in configs:
            samples[config].append(run_child(config)[0])
        print(f"  round {i + 1}: " + ", ".join(f"{c} {samples[c][-1]['build'] * 1000:.0f} ms" for c in configs),
              flush=True)
    r: dict = {"rounds": rounds, "configs": {}}
    base = samples["baseline"]
    for config in configs:
        s = samples[config]
        r["configs"][config] = {
            key: median(x[key] for x in s) for key in ("import", "build", "rss_mb", "wall", "modules")
        }
        # per-round ratios against the baseline of the same round
        r["configs"][config]["round_ratio_build"] = [a["build"] / b["build"] for a, b in zip(s, base)]
        r["configs"][config]["round_ratio_import"] = [a["import"] / b["build"] for a, b in zip(s, base)]
    print("  -X importtime profiles ...", flush=True)
    profiles = {c: importtime_profile(c, it_runs) for c in ["baseline"] + list(FUNCTIONS)}
    r["profiles"] = profiles
    common.report("coldstart", markdown(r, quick), quick=quick, write_doc=write_doc, after="fanout")
    return r


def extra_by_package(profile: dict, baseline: dict) -> list[tuple[str, float, int]]:
    """Self time (ms) of the modules the baseline does not import, summed per top-level package."""
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for name, t in profile.items():
        if name not in baseline:
            totals[package_of(name)] += t["self"]
            counts[package_of(name)] += 1
    return sorted(((p, v, counts[p]) for p, v in totals.items()), key=lambda x: -x[1])


def markdown(r: dict, quick: bool) -> str:
    c = r["configs"]
    base = c["baseline"]
    b = base["build"]
    rows = []
    labels = {"baseline": "**baseline**: `import boto3` + DynamoDB and API Gateway management clients"}
    for fn in FUNCTIONS:
        labels[fn] = f"`{fn}`"
    labels["message:notrace"] = "`message` with `POWERTOOLS_TRACE_DISABLED` (what X-Ray costs)"
    for config, label in labels.items():
        x = c[config]
        ratio = x["build"] / b
        rr = x["round_ratio_build"]
        # The target (issue 12) is Lambda's init phase: `import app` against the baseline's
        # import + two clients. The first invocation's build is shown beside it, not judged.
        met = "" if config == "baseline" else ("yes" if x["import"] / b <= TARGET else "**no**")
        rows.append((label, f"{x['import'] * 1000:.0f}", f"{x['build'] * 1000:.0f}",
                     f"{x['import'] / b:.2f}x", f"{ratio:.2f}x ({min(rr):.2f} to {max(rr):.2f})",
                     f"{x['rss_mb']:.0f}", f"{x['rss_mb'] / base['rss_mb']:.2f}x", f"{x['wall'] * 1000:.0f}",
                     f"{x['modules']:.0f}", met))
    lines = [
        "## Cold start (`python -m bench coldstart`)",
        "",
        measured_line(quick, f"Each figure is the median of {r['rounds']} interleaved rounds (every configuration "
                             "once per round, one fresh interpreter each). The child runs like Lambda's: working "
                             "directory and first `sys.path` entries the function's folder and `layers/common`, the "
                             "template's environment, `LAMBDA_TASK_ROOT` set (so Powertools' Tracer patches boto3 as "
                             "with `Tracing: Active`), fake credentials. Packages outside the layer's dependency closure "
                             "(`layers/common/requirements.txt` with extras; the dev venv also holds moto, requests, "
                             "...) are hidden from the child, as they would be absent in Lambda."),
        "",
        "* **import** = `import app`: the module-level code, which is what Lambda's **init phase** runs.",
        "* **import + build** = also what the first invocation builds lazily: `realtime.runtime.app(endpoint)` "
        "(DynamoDB and SQS clients, the sender), the notifier for `notify`, the token verifier for `connect` "
        "(from `JWT_SECRET`; deployed, it reads Secrets Manager: one more client and a network round trip, "
        "not measured). That part is billed as the first request's duration and adds to its latency.",
        f"* The target is the init phase: `import app` within {TARGET}x of the baseline's import + two clients "
        "(the last column). The build is billed to the first request and shown, not judged.",
        "* The ratio column compares with the baseline's full time (its import + two clients); in brackets the "
        "range of the per-round ratios. \"process\" is the parent's wall time for the whole child, interpreter "
        "start-up included.",
        "",
        table(["configuration", "import ms", "import + build ms", "import vs baseline", "import + build vs baseline",
               "peak RSS MB", "RSS vs baseline", "process ms", "modules", f"init ≤ {TARGET}x"],
              rows, "lrrrrrrrrl"),
        "",
    ]
    profiles = r["profiles"]
    bp = profiles["baseline"]
    lines += ["### What dominates (`python -X importtime`, `message`, import + build)", "",
              "Top 10 modules by cumulative import time (nested: a package includes what it imports). "
              "Times under `-X importtime` are inflated by its own bookkeeping; read them as shares.", ""]
    msg = profiles["message"]
    top = sorted(msg.items(), key=lambda kv: -kv[1]["cum"])
    top = [(n, t) for n, t in top if n != "app"][:10]
    lines.append(table(["module", "cumulative ms", "self ms", "imported by the baseline too"],
                       [(f"`{n}`", f"{t['cum']:.0f}", f"{t['self']:.1f}", "yes" if n in bp else "**no**")
                        for n, t in top], "lrrl"))
    lines += ["", "What each function imports beyond the baseline (self time of modules the baseline never "
              "imports, summed per top-level package; top 8):", ""]
    rows = []
    for fn in FUNCTIONS:
        extra = extra_by_package(profiles[fn], bp)
        total = sum(v for _, v, _ in extra)
        rows.append((f"`{fn}`", f"{total:.0f}", ", ".join(f"`{p}` {v:.0f} ({n} modules)" for p, v, n in extra[:8])))
    lines.append(table(["function", "extra ms", "by package"], rows, "lrl"))
    jwt_cum = msg.get("jwt", {}).get("cum", 0.0)
    auth_cum = msg.get("realtime.auth", {}).get("cum", 0.0)
    xray = sum(t["self"] for n, t in msg.items() if package_of(n) in ("aws_xray_sdk", "wrapt") and n not in bp)
    lines += ["", f"In `message`: `realtime.auth` {auth_cum:.0f} ms cumulative, of which `jwt` (with "
              f"`cryptography`) {jwt_cum:.0f} ms, though only `$connect` verifies tokens; X-Ray SDK modules "
              f"(`aws_xray_sdk`, `wrapt`) {xray:.0f} ms self time."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    common.main("coldstart", run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
