#!/usr/bin/env python3
"""checks.py CHECK ROOT [FILE]: one check of the deployment files under ROOT.

Exits 0 when the check holds, 1 with the reasons on stdout when it does
not, 2 on bad usage.  ROOT is the repository, or a copy of its deployment
files (deploy/, Dockerfile, .dockerignore, docker-compose.yml) that
tests/deploy/run.sh broke on purpose.  Facts about the programs and the
Makefile come from the environment, gathered by run.sh:

  GREET_SHUTDOWN_DEFAULT   the worker's default GREET_SHUTDOWN_TIMEOUT, seconds (--help)
  GREET_JOBS_QUEUE_DEFAULT the worker's default GREET_JOBS_QUEUE (--help)
  GREET_WORKER_VARS        every variable the worker reads (--help), space-separated
  GREET_PREFIX             the Makefile's PREFIX
  GREET_SOURCE_DIRS        directories `make install` reads, space-separated
  GREET_BUILD_PACKAGES     Debian packages of the libraries the build links against
  GREET_RUNTIME_PACKAGES   Debian packages of the libraries the programs need at run time

Only PyYAML and the standard library are used.
"""
import fnmatch
import json
import os
import re
import shlex
import sys

import yaml

UNIT = "deploy/systemd/greet-worker@.service"
ENV_EXAMPLE = "deploy/systemd/worker.env.example"
K8S = "deploy/kubernetes"
WORKER_NAME = "greet-worker"  # the Deployment, the container's command

problems = []


def fail(message):
    problems.append(message)


def env(name):
    value = os.environ.get(name, "")
    if not value:
        fail(f"{name} is not set (run.sh reads it from the programs and the Makefile)")
    return value


def env_int(name):
    value = env(name)
    try:
        return int(value)
    except ValueError:
        fail(f"{name}={value!r} is not a whole number")
        return None


# ---------------------------------------------------------------- parsing


def read(root, path):
    with open(os.path.join(root, path), encoding="utf-8") as f:
        return f.read()


def unit_settings(text):
    """[(section, key, value)] of a systemd unit, continuation lines joined."""
    settings, section, pending = [], None, ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line:
            key, value = line.split("=", 1)
            settings.append((section, key.strip(), value.strip()))
    return settings


def unit_values(settings, key, section="Service"):
    return [v for s, k, v in settings if s == section and k == key]


def unit_last(settings, key, section="Service"):
    values = unit_values(settings, key, section)
    return values[-1] if values else None


TIME_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "": 1, "s": 1, "sec": 1, "second": 1,
    "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600,
    "hour": 3600, "hours": 3600,
}


def timespan(value):
    """systemd time span ("30", "30s", "1min 30s") in seconds; None if unreadable."""
    if value in ("infinity",):
        return float("inf")
    total, found = 0.0, False
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        if unit not in TIME_UNITS:
            return None
        total += float(number) * TIME_UNITS[unit]
        found = True
    if not found or re.sub(r"[\d.\sa-z]", "", value):
        return None
    return total


def http_addr(value):
    """(host, port) of HOST:PORT, :PORT or [V6]:PORT; None if unreadable."""
    m = re.fullmatch(r"(\[[^\]]*\]|[^:\[\]]*):(\d+)", value or "")
    return (m.group(1), int(m.group(2))) if m else None


ALL_INTERFACES = ("", "0.0.0.0", "[::]", "*")


def k8s_documents(root):
    """[(file, document)] of every YAML file in deploy/kubernetes."""
    docs = []
    directory = os.path.join(root, K8S)
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    docs.append((name, doc))
    return docs


def by_kind(root, kind):
    return [(f, d) for f, d in k8s_documents(root) if isinstance(d, dict) and d.get("kind") == kind]


def one(root, kind, name=None):
    found = [d for f, d in by_kind(root, kind) if name is None or d.get("metadata", {}).get("name") == name]
    if len(found) != 1:
        what = f"{kind} {name}" if name else kind
        fail(f"expected one {what} in {K8S}, found {len(found)}")
        return None
    return found[0]


def dig(obj, *path, default=None):
    for key in path:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return default
    return obj


def pod_spec(doc):
    return dig(doc, "spec", "template", "spec", default={}) or {}


def container(doc, name=None):
    containers = pod_spec(doc).get("containers") or []
    if name is not None:
        containers = [c for c in containers if c.get("name") == name]
    if len(containers) != 1:
        fail(f"{doc.get('kind')} {dig(doc, 'metadata', 'name')}: expected one container"
             f"{' named ' + name if name else ''}, found {len(containers)}")
        return {}
    return containers[0]


def container_env(c):
    return {e.get("name"): e for e in c.get("env") or []}


def env_value(c, name):
    e = container_env(c).get(name)
    return None if e is None else e.get("value")


def secrets(root):
    """{secret name: set of keys} of every Secret in deploy/kubernetes."""
    out = {}
    for _, d in by_kind(root, "Secret"):
        keys = set((d.get("data") or {}).keys()) | set((d.get("stringData") or {}).keys())
        out[dig(d, "metadata", "name")] = keys
    return out


def secret_ref_ok(root, where, name, key):
    known = secrets(root)
    if name not in known:
        fail(f"{where}: Secret {name!r} is not defined in {K8S} (Secrets: {sorted(known)})")
    elif key not in known[name]:
        fail(f"{where}: Secret {name!r} has no key {key!r} (keys: {sorted(known[name])})")


def quantity(value):
    """Kubernetes memory quantity in bytes; None if unreadable."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(value))
    if not m:
        return None
    scale = {None: 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1024, "Mi": 1024**2,
             "Gi": 1024**3, "Ti": 1024**4}[m.group(2)]
    return float(m.group(1)) * scale


def dockerfile_stages(root):
    """[(name, [(INSTRUCTION, arguments)])] of the Dockerfile, lines joined."""
    stages, lines, pending = [], [], ""
    for raw in read(root, "Dockerfile").splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    for line in lines:
        parts = line.split(None, 1)
        instruction, args = parts[0].upper(), parts[1] if len(parts) > 1 else ""
        if instruction == "FROM":
            m = re.search(r"\s+AS\s+(\S+)\s*$", args, re.I)
            stages.append((m.group(1) if m else str(len(stages)), []))
        elif stages:
            stages[-1][1].append((instruction, args))
    return stages


def dockerfile_user_ids(root):
    """(uid, gid) of the runtime stage's USER; None when not numeric."""
    stages = dockerfile_stages(root)
    users = [a for i, a in stages[-1][1] if i == "USER"] if stages else []
    if not users:
        return None
    m = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1].strip())
    return (int(m.group(1)), int(m.group(2)) if m.group(2) else None) if m else None


def apt_packages(instructions):
    """Packages named by `apt-get install` in a stage's RUN lines."""
    packages = set()
    for instruction, args in instructions:
        if instruction != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", args):
            words = shlex.split(command)
            if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
                packages.update(w for w in words[words.index("install") + 1:] if not w.startswith("-"))
    return packages


# ---------------------------------------------------------------- systemd


def check_unit_timeout(root):
    """TimeoutStopSec above the worker's shutdown deadline (and the example env's)."""
    settings = unit_settings(read(root, UNIT))
    deadline = env_int("GREET_SHUTDOWN_DEFAULT")
    if deadline is None:
        return
    for line in read(root, ENV_EXAMPLE).splitlines():
        m = re.fullmatch(r"\s*GREET_SHUTDOWN_TIMEOUT=\s*(\S+)\s*", line)
        if m:
            if not m.group(1).isdigit():
                fail(f"{ENV_EXAMPLE}: GREET_SHUTDOWN_TIMEOUT={m.group(1)} is not a number of seconds")
            else:
                deadline = max(deadline, int(m.group(1)))
    stop = unit_last(settings, "TimeoutStopSec") or unit_last(settings, "TimeoutSec")
    if stop is None:
        fail(f"{UNIT}: no TimeoutStopSec= (the manager's default may be below the drain deadline)")
        return
    seconds = timespan(stop)
    if seconds is None:
        fail(f"{UNIT}: TimeoutStopSec={stop} is not a time span")
    elif seconds <= deadline:
        fail(f"{UNIT}: TimeoutStopSec={stop} ({seconds:g} s) is not above the worker's shutdown "
             f"deadline of {deadline} s: systemd would SIGKILL a draining worker")


def check_unit_settings(root):
    """Stop signal, restart policy, environment files, ExecStart, hardening."""
    settings = unit_settings(read(root, UNIT))
    want = {
        "KillSignal": "SIGTERM", "Restart": "on-failure", "NoNewPrivileges": "yes",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": "",
    }
    for key, value in want.items():
        got = unit_last(settings, key)
        if got != value:
            fail(f"{UNIT}: {key}={got if got is not None else '(unset)'}, expected {key}={value}")
    families = set(" ".join(unit_values(settings, "RestrictAddressFamilies")).split())
    if families != {"AF_INET", "AF_INET6", "AF_UNIX"}:
        fail(f"{UNIT}: RestrictAddressFamilies={' '.join(sorted(families)) or '(unset)'}, "
             "expected AF_INET AF_INET6 AF_UNIX")
    filters = unit_values(settings, "SystemCallFilter")
    if not any("@system-service" in f and not f.startswith("~") for f in filters):
        fail(f"{UNIT}: no SystemCallFilter=@system-service")
    if unit_last(settings, "DynamicUser") != "yes" and not unit_last(settings, "User"):
        fail(f"{UNIT}: runs as root: set DynamicUser=yes or User=")
    if "2" not in " ".join(unit_values(settings, "RestartPreventExitStatus")).split():
        fail(f"{UNIT}: RestartPreventExitStatus= lacks 2: a bad setting (exit 2) would restart forever")
    files = unit_values(settings, "EnvironmentFile")
    if not any(not f.startswith("-") for f in files):
        fail(f"{UNIT}: no required EnvironmentFile= (the shared settings)")
    if not any(f.startswith("-") and "%i" in f for f in files):
        fail(f"{UNIT}: no optional per-instance EnvironmentFile=-...%i... (metrics ports)")
    prefix = env("GREET_PREFIX")
    exec_start = unit_values(settings, "ExecStart")
    expected = f"{prefix}/bin/{WORKER_NAME}"
    if len(exec_start) != 1 or shlex.split(exec_start[0].lstrip("-@:+!"))[:1] != [expected]:
        fail(f"{UNIT}: ExecStart={exec_start}, expected {expected} (where make install puts it)")


def check_env_example(root):
    """The example env file names only variables the worker reads, and no shared port."""
    known = set(env("GREET_WORKER_VARS").split())
    seen = set()
    for number, line in enumerate(read(root, ENV_EXAMPLE).splitlines(), 1):
        # KEY=value, or #KEY=value: a setting shown commented out.
        m = re.fullmatch(r"\s*(#)?([A-Z][A-Z0-9_]*)=.*", line)
        if not m:
            continue
        name, commented = m.group(2), bool(m.group(1))
        seen.add(name)
        if known and name not in known:
            fail(f"{ENV_EXAMPLE}:{number}: {name} is not a variable greet-worker reads")
        if name == "GREET_HTTP_ADDR" and not commented:
            fail(f"{ENV_EXAMPLE}:{number}: GREET_HTTP_ADDR in the shared file gives every instance "
                 "the same port: set it per instance in /etc/greet/worker-N.env")
    for name in ("AMQP_URL", "DATABASE_URL"):
        if name not in seen:
            fail(f"{ENV_EXAMPLE}: does not set {name}")


# ---------------------------------------------------------------- Kubernetes


def check_k8s_parse(root):
    """Every YAML file parses; every document has apiVersion, kind, metadata.name."""
    directory = os.path.join(root, K8S)
    names = [n for n in sorted(os.listdir(directory)) if n.endswith((".yaml", ".yml"))]
    if not names:
        fail(f"{K8S}: no YAML files")
    for name in names:
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            fail(f"{K8S}/{name}: {e}")
            continue
        if not docs:
            fail(f"{K8S}/{name}: empty")
        for i, doc in enumerate(docs, 1):
            where = f"{K8S}/{name} document {i}"
            if not isinstance(doc, dict):
                fail(f"{where}: not a mapping")
                continue
            for key in ("apiVersion", "kind"):
                if not isinstance(doc.get(key), str) or not doc[key]:
                    fail(f"{where}: no {key}")
            # A Kustomization is kustomize's input, not an object in the
            # cluster: it has no name.
            if doc.get("kind") != "Kustomization" and not dig(doc, "metadata", "name"):
                fail(f"{where}: no metadata.name")


def check_k8s_kustomization(root):
    """kustomization.yaml lists every manifest, and lists only files that exist."""
    path = os.path.join(root, K8S, "kustomization.yaml")
    if not os.path.exists(path):
        fail(f"{K8S}/kustomization.yaml is missing")
        return
    with open(path, encoding="utf-8") as f:
        k = yaml.safe_load(f) or {}
    listed = list(k.get("resources") or [])
    for key in ("patches", "patchesStrategicMerge"):
        for p in k.get(key) or []:
            listed.append(p.get("path") if isinstance(p, dict) else p)
    listed = [os.path.normpath(p) for p in listed if p]
    files = [n for n in sorted(os.listdir(os.path.join(root, K8S)))
             if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml"]
    for name in files:
        if name not in listed:
            fail(f"{K8S}/{name} is not listed in kustomization.yaml")
    for name in listed:
        if not os.path.exists(os.path.join(root, K8S, name)):
            fail(f"kustomization.yaml lists {name}, which does not exist")
    if len(set(listed)) != len(listed):
        fail("kustomization.yaml lists a file twice")


def deployment(root):
    return one(root, "Deployment", WORKER_NAME)


def worker_container(root):
    d = deployment(root)
    return (d, container(d, "worker")) if d else (None, {})


def check_k8s_probes(root):
    """Probes on /healthz and /readyz at the port GREET_HTTP_ADDR names; scrape annotations agree."""
    d, c = worker_container(root)
    if not d or not c:
        return
    addr = env_value(c, "GREET_HTTP_ADDR")
    parsed = http_addr(addr)
    if parsed is None:
        fail(f"Deployment {WORKER_NAME}: GREET_HTTP_ADDR={addr!r} is not HOST:PORT")
        return
    host, port = parsed
    if host not in ALL_INTERFACES:
        fail(f"Deployment {WORKER_NAME}: GREET_HTTP_ADDR={addr}: the kubelet probes the pod's IP, "
             "so the worker must listen on every interface (:PORT)")
    ports = c.get("ports") or []
    named = {p.get("name"): p.get("containerPort") for p in ports if p.get("name")}
    if port not in [p.get("containerPort") for p in ports]:
        fail(f"Deployment {WORKER_NAME}: no containerPort {port} (GREET_HTTP_ADDR={addr}); ports: {ports}")
    if not any(p.get("containerPort") == port and p.get("name") for p in ports):
        fail(f"Deployment {WORKER_NAME}: containerPort {port} has no name")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = dig(c, probe, "httpGet")
        if not isinstance(get, dict):
            fail(f"Deployment {WORKER_NAME}: no {probe}.httpGet")
            continue
        if get.get("path") != path:
            fail(f"Deployment {WORKER_NAME}: {probe} path {get.get('path')!r}, expected {path!r}")
        target = get.get("port")
        resolved = named.get(target) if isinstance(target, str) else target
        if resolved != port:
            fail(f"Deployment {WORKER_NAME}: {probe} port {target!r} is not the worker's port {port} "
                 f"(GREET_HTTP_ADDR={addr})")
    annotations = dig(d, "spec", "template", "metadata", "annotations", default={}) or {}
    if annotations.get("prometheus.io/scrape") != "true":
        fail(f"Deployment {WORKER_NAME}: pod annotation prometheus.io/scrape is not \"true\"")
    if str(annotations.get("prometheus.io/port")) != str(port):
        fail(f"Deployment {WORKER_NAME}: prometheus.io/port={annotations.get('prometheus.io/port')!r}, "
             f"the worker listens on {port}")
    if annotations.get("prometheus.io/path", "/metrics") != "/metrics":
        fail(f"Deployment {WORKER_NAME}: prometheus.io/path={annotations.get('prometheus.io/path')!r}, "
             "expected /metrics")


def check_k8s_grace(root):
    """terminationGracePeriodSeconds above the worker's shutdown deadline."""
    d, c = worker_container(root)
    if not d:
        return
    deadline = env_value(c, "GREET_SHUTDOWN_TIMEOUT") or os.environ.get("GREET_SHUTDOWN_DEFAULT")
    if not str(deadline or "").isdigit():
        fail(f"shutdown deadline {deadline!r} is not a number of seconds")
        return
    grace = pod_spec(d).get("terminationGracePeriodSeconds")
    if not isinstance(grace, int):
        fail(f"Deployment {WORKER_NAME}: terminationGracePeriodSeconds is not set (default 30)")
    elif grace <= int(deadline):
        fail(f"Deployment {WORKER_NAME}: terminationGracePeriodSeconds {grace} is not above the "
             f"worker's shutdown deadline of {deadline} s")


def check_security(kind, name, doc, c, ids):
    where = f"{kind} {name}"
    pod = pod_spec(doc).get("securityContext") or {}
    sc = c.get("securityContext") or {}
    if not (sc.get("runAsNonRoot") or pod.get("runAsNonRoot")):
        fail(f"{where}: runAsNonRoot is not true")
    uid = sc.get("runAsUser", pod.get("runAsUser"))
    gid = sc.get("runAsGroup", pod.get("runAsGroup"))
    if ids is None:
        fail("Dockerfile: the runtime stage's USER is not numeric UID[:GID] (runAsNonRoot cannot verify a name)")
    else:
        if uid != ids[0]:
            fail(f"{where}: runAsUser {uid}, the image's USER is {ids[0]}")
        if ids[1] is not None and gid != ids[1]:
            fail(f"{where}: runAsGroup {gid}, the image's USER group is {ids[1]}")
    if sc.get("readOnlyRootFilesystem") is not True:
        fail(f"{where}: readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        fail(f"{where}: allowPrivilegeEscalation is not false")
    if "ALL" not in (dig(sc, "capabilities", "drop", default=[]) or []):
        fail(f"{where}: capabilities.drop lacks ALL")
    if sc.get("privileged"):
        fail(f"{where}: privileged")
    resources = c.get("resources") or {}
    request = quantity(dig(resources, "requests", "memory", default=""))
    limit = quantity(dig(resources, "limits", "memory", default=""))
    if request is None or limit is None:
        fail(f"{where}: memory request and limit must both be set")
    elif request > limit:
        fail(f"{where}: memory request above its limit")
    elif limit < 32 * 1024**2:
        # 8 MiB measured peak RSS plus up to prefetch x 64 KiB of bodies in hand.
        fail(f"{where}: memory limit {dig(resources, 'limits', 'memory')} leaves no headroom over the "
             "measured 8 MiB plus 12.5 MiB of job bodies in hand")


def check_k8s_security(root):
    """Pods run as the image's numeric user, read-only, no capabilities, with memory bounds."""
    ids = dockerfile_user_ids(root)
    d, c = worker_container(root)
    if d and c:
        check_security("Deployment", WORKER_NAME, d, c, ids)
    jobs = by_kind(root, "Job")
    if not jobs:
        fail(f"no Job in {K8S}")
    for _, job in jobs:
        name = dig(job, "metadata", "name")
        jc = container(job)
        if jc:
            check_security("Job", name, job, jc, ids)


def check_k8s_secret_refs(root):
    """Every secretKeyRef names a Secret and key defined here; Secrets carry placeholders."""
    for kind in ("Deployment", "Job"):
        for _, doc in by_kind(root, kind):
            name = dig(doc, "metadata", "name")
            for c in pod_spec(doc).get("containers") or []:
                for e in c.get("env") or []:
                    ref = dig(e, "valueFrom", "secretKeyRef")
                    if ref:
                        secret_ref_ok(root, f"{kind} {name} env {e.get('name')}", ref.get("name"), ref.get("key"))
                for src in c.get("envFrom") or []:
                    ref = src.get("secretRef")
                    if ref and ref.get("name") not in secrets(root):
                        fail(f"{kind} {name}: envFrom Secret {ref.get('name')!r} is not defined")
    d, c = worker_container(root)
    for var in ("AMQP_URL", "DATABASE_URL"):
        if c and not dig(container_env(c).get(var, {}), "valueFrom", "secretKeyRef"):
            fail(f"Deployment {WORKER_NAME}: {var} does not come from a Secret")
    for _, s in by_kind(root, "Secret"):
        for key, value in (s.get("stringData") or {}).items():
            if "CHANGE-ME" not in str(value):
                fail(f"Secret {dig(s, 'metadata', 'name')} {key}: not a marked placeholder (CHANGE-ME)")


def check_k8s_scaledobject(root):
    """KEDA: scales the Deployment on the worker's jobs queue, authenticated from a Secret."""
    so = one(root, "ScaledObject")
    d, c = worker_container(root)
    if not so or not d:
        return
    target = dig(so, "spec", "scaleTargetRef", default={}) or {}
    if target.get("name") != dig(d, "metadata", "name"):
        fail(f"ScaledObject scaleTargetRef.name {target.get('name')!r} is not the Deployment "
             f"{dig(d, 'metadata', 'name')!r}")
    if target.get("kind", "Deployment") != "Deployment":
        fail(f"ScaledObject scaleTargetRef.kind {target.get('kind')!r}, expected Deployment")
    low, high = dig(so, "spec", "minReplicaCount", default=0), dig(so, "spec", "maxReplicaCount", default=100)
    if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high and high >= 1):
        fail(f"ScaledObject: minReplicaCount {low} / maxReplicaCount {high} make no range")
    if "replicas" in (d.get("spec") or {}):
        fail(f"Deployment {WORKER_NAME} sets replicas: each apply would undo the autoscaler's count")
    queue = env_value(c, "GREET_JOBS_QUEUE") or os.environ.get("GREET_JOBS_QUEUE_DEFAULT")
    if not queue:
        fail("the worker's jobs queue is unknown (GREET_JOBS_QUEUE_DEFAULT)")
    triggers = dig(so, "spec", "triggers", default=[]) or []
    rabbit = [t for t in triggers if t.get("type") == "rabbitmq"]
    if len(rabbit) != 1:
        fail(f"ScaledObject: expected one trigger of type rabbitmq, found {[t.get('type') for t in triggers]}")
        return
    t = rabbit[0]
    meta = t.get("metadata") or {}
    if meta.get("queueName") != queue:
        fail(f"ScaledObject trigger queueName {meta.get('queueName')!r}, the worker consumes {queue!r}")
    if meta.get("mode") != "QueueLength":
        fail(f"ScaledObject trigger mode {meta.get('mode')!r}, expected QueueLength")
    if not re.fullmatch(r"[1-9]\d*", str(meta.get("value", ""))):
        fail(f"ScaledObject trigger value {meta.get('value')!r} is not a positive whole number (a string)")
    if not isinstance(meta.get("value"), str):
        fail("ScaledObject trigger value must be a string in YAML (\"2000\")")
    if "host" in meta or "hostFromEnv" in meta:
        fail("ScaledObject trigger names the broker URL itself; it belongs in the TriggerAuthentication's Secret")
    auth = dig(t, "authenticationRef", "name")
    kind = dig(t, "authenticationRef", "kind", default="TriggerAuthentication")
    ta = [doc for _, doc in by_kind(root, kind) if dig(doc, "metadata", "name") == auth]
    if not ta:
        fail(f"ScaledObject authenticationRef {kind} {auth!r} is not defined in {K8S}")
        return
    refs = dig(ta[0], "spec", "secretTargetRef", default=[]) or []
    hosts = [r for r in refs if r.get("parameter") == "host"]
    if not hosts:
        fail(f"{kind} {auth}: no secretTargetRef for the parameter host (the broker URL)")
    for r in refs:
        secret_ref_ok(root, f"{kind} {auth} parameter {r.get('parameter')}", r.get("name"), r.get("key"))


def check_k8s_job(root):
    """The migrate Job runs greet-admin migrate, as the owner, from the workers' image."""
    jobs = by_kind(root, "Job")
    d, c = worker_container(root)
    migrate = [(f, j) for f, j in jobs
               if (container(j).get("command") or []) + (container(j).get("args") or []) in
               (["greet-admin", "migrate"], ["greet-admin", "migrate", "--sample"])]
    if len(migrate) != 1:
        fail(f"expected one Job whose container runs greet-admin migrate, found {len(migrate)}")
        return
    _, job = migrate[0]
    jc = container(job)
    if c and jc.get("image") != c.get("image"):
        fail(f"Job image {jc.get('image')!r} differs from the workers' {c.get('image')!r}")
    if pod_spec(job).get("restartPolicy") not in ("OnFailure", "Never"):
        fail("Job restartPolicy must be OnFailure or Never")
    ref = dig(container_env(jc).get("DATABASE_URL", {}), "valueFrom", "secretKeyRef")
    if not ref:
        fail("Job: DATABASE_URL does not come from a Secret")
        return
    worker_ref = dig(container_env(c).get("DATABASE_URL", {}), "valueFrom", "secretKeyRef") if c else None
    if worker_ref and (ref.get("name"), ref.get("key")) == (worker_ref.get("name"), worker_ref.get("key")):
        fail("Job: migrate uses the workers' DATABASE_URL; greet_worker may only read")
    if "GREET_SQL_DIR" in container_env(jc):
        fail("Job: GREET_SQL_DIR is set; the image's installed sql/ is the one to apply")


def check_k8s_images(root):
    """Deployment and Job run one image, the one kustomization.yaml rewrites."""
    with open(os.path.join(root, K8S, "kustomization.yaml"), encoding="utf-8") as f:
        k = yaml.safe_load(f) or {}
    names = {i.get("name") for i in k.get("images") or []}
    for kind in ("Deployment", "Job"):
        for _, doc in by_kind(root, kind):
            for c in pod_spec(doc).get("containers") or []:
                image = c.get("image", "")
                base = re.sub(r"(@sha256:[0-9a-f]+|:[^/:]+)$", "", image)
                if names and base not in names:
                    fail(f"{kind} {dig(doc, 'metadata', 'name')}: image {image!r} is not one that "
                         f"kustomization.yaml sets (images: {sorted(names)})")


# ---------------------------------------------------------------- compose


def compose(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def compose_env(service):
    e = service.get("environment") or {}
    if isinstance(e, list):
        e = dict(item.split("=", 1) if "=" in item else (item, None) for item in e)
    return e


def healthcheck_command(service):
    test = dig(service, "healthcheck", "test", default=[]) or []
    if isinstance(test, str):
        return shlex.split(test)
    if test and test[0] == "CMD-SHELL":
        return shlex.split(" ".join(test[1:]))
    return list(test[1:]) if test and test[0] == "CMD" else list(test)


def check_compose_worker(root, config):
    """The worker: GREET_HTTP_ADDR, a /readyz healthcheck on its port, scalable ports, a grace period."""
    c = compose(config)
    w = dig(c, "services", "worker")
    if not isinstance(w, dict):
        fail("docker-compose.yml: no worker service")
        return
    addr = compose_env(w).get("GREET_HTTP_ADDR")
    parsed = http_addr(addr)
    if parsed is None:
        fail(f"compose worker: GREET_HTTP_ADDR={addr!r} is not HOST:PORT")
        return
    host, port = parsed
    if host not in ALL_INTERFACES:
        fail(f"compose worker: GREET_HTTP_ADDR={addr} is not reachable from other containers (:PORT)")
    command = healthcheck_command(w)
    urls = [a for a in command if re.match(r"https?://", a)]
    if not urls:
        fail(f"compose worker: the healthcheck fetches no URL: {command}")
    else:
        m = re.fullmatch(r"https?://([^/:]+|\[[^\]]+\])(?::(\d+))?(/[^?#]*)?.*", urls[0])
        if not m:
            fail(f"compose worker: healthcheck URL {urls[0]!r} unreadable")
        else:
            if m.group(3) != "/readyz":
                fail(f"compose worker: healthcheck path {m.group(3)!r}, expected /readyz")
            if int(m.group(2) or 80) != port:
                fail(f"compose worker: healthcheck port {m.group(2)}, GREET_HTTP_ADDR names {port}")
        tool = os.path.basename(command[0]) if command else ""
        runtime = apt_packages(dockerfile_stages(root)[-1][1]) if dockerfile_stages(root) else set()
        if tool in ("curl", "wget") and tool not in runtime:
            fail(f"compose worker: the healthcheck runs {tool}, which the Dockerfile's runtime stage "
                 f"does not install ({sorted(runtime)})")
        if "curl" == tool and not ({"-f", "--fail"} & set(command)):
            fail("compose worker: curl without --fail exits 0 on a 503")
    exposed = {str(p).split("/")[0] for p in w.get("expose") or []}
    if str(port) not in exposed:
        fail(f"compose worker: port {port} is not in expose: {sorted(exposed)}")
    for p in w.get("ports") or []:
        if isinstance(p, dict):
            published, ip, target = p.get("published"), p.get("host_ip"), p.get("target")
        else:
            parts = str(p).split("/")[0].rsplit(":", 2)
            parts = [""] * (3 - len(parts)) + parts
            ip, published, target = parts
        if str(target) == str(port) and (published not in (None, "", 0)):
            fail(f"compose worker: port {p} fixes the host port: --scale worker=N collides on it")
        if ip not in ("127.0.0.1", "::1", "[::1]"):
            fail(f"compose worker: port {p} is published beyond the host's loopback")
    grace = timespan(str(w.get("stop_grace_period", "10s")))
    deadline = compose_env(w).get("GREET_SHUTDOWN_TIMEOUT") or os.environ.get("GREET_SHUTDOWN_DEFAULT", "")
    if grace is None or not str(deadline).isdigit() or grace <= int(deadline):
        fail(f"compose worker: stop_grace_period {w.get('stop_grace_period', '10s (default)')} is not "
             f"above the shutdown deadline of {deadline} s")


def check_compose_migrate(root, config):
    """The schema: a one-shot greet-admin migrate, as the owner, that the worker waits for."""
    c = compose(config)
    services = c.get("services") or {}
    def words(value):
        return shlex.split(value) if isinstance(value, str) else list(value or [])

    migrate = [n for n, s in services.items()
               if (words(s.get("entrypoint")) + words(s.get("command")))[:2] == ["greet-admin", "migrate"]]
    if len(migrate) != 1:
        fail(f"compose: expected one service running greet-admin migrate, found {migrate}")
        return
    name = migrate[0]
    m = services[name]
    if str(m.get("restart", "no")) not in ("no", "on-failure"):
        fail(f"compose {name}: restart {m.get('restart')!r}: a one-shot service must not restart when done")
    url = compose_env(m).get("DATABASE_URL", "")
    if "greet_worker" in url:
        fail(f"compose {name}: DATABASE_URL is greet_worker, which may only read")
    if "postgres" not in (m.get("depends_on") or {}):
        fail(f"compose {name}: does not wait for postgres")
    w = services.get("worker") or {}
    condition = dig(w, "depends_on", name, "condition")
    if condition != "service_completed_successfully":
        fail(f"compose worker: depends_on {name} condition {condition!r}, expected service_completed_successfully")
    pg = services.get("postgres") or {}
    check = healthcheck_command(pg)
    if check[:1] == ["pg_isready"] and "-h" not in check and "--host" not in check:
        fail("compose postgres: pg_isready over the Unix socket passes while the init scripts run; "
             "migrate would find no TCP listener (use -h 127.0.0.1)")
    for vol in pg.get("volumes") or []:
        source = vol.get("source") if isinstance(vol, dict) else str(vol).split(":")[0]
        if source and os.path.basename(os.path.normpath(source)) == "sql":
            fail("compose postgres: still mounts sql/ for its init scripts; the schema is migrate's")


def check_compose_env(root, config):
    """The README's variables reach the services that use them."""
    c = compose(config)
    s = c.get("services") or {}
    expect = [
        ("rabbitmq", "RABBITMQ_DEFAULT_USER", "ru-test"),
        ("rabbitmq", "RABBITMQ_DEFAULT_PASS", "rp-test"),
        ("postgres", "POSTGRES_PASSWORD", "pp-test"),
        ("postgres", "GREET_WORKER_PASSWORD", "wp-test"),
        ("worker", "AMQP_URL", "ru-test:rp-test@"),
        ("worker", "DATABASE_URL", "greet_worker:wp-test@"),
        ("producer", "AMQP_URL", "ru-test:rp-test@"),
        ("replies", "AMQP_URL", "ru-test:rp-test@"),
        ("migrate", "DATABASE_URL", ":pp-test@"),
    ]
    for service, var, want in expect:
        got = compose_env(s.get(service) or {}).get(var)
        if got is None or want not in str(got):
            fail(f"compose {service}: {var}={got!r} does not carry {want!r} from the environment")


# ---------------------------------------------------------------- Dockerfile


def dockerignore(root):
    path = os.path.join(root, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def ignored(path, patterns):
    result = False
    for p in patterns:
        negate = p.startswith("!")
        p = p.lstrip("!").strip("/")
        parts = path.split("/")
        hit = any(fnmatch.fnmatch("/".join(parts[:i]), p) for i in range(1, len(parts) + 1))
        if hit:
            result = not negate
    return result


def check_dockerfile_copies(root):
    """The build stage copies every directory make all install reads, to the same place."""
    stages = dockerfile_stages(root)
    if len(stages) < 2:
        fail("Dockerfile: expected a build stage and a runtime stage")
        return
    build = stages[0][1]
    copied = {}
    for instruction, args in build:
        if instruction not in ("COPY", "ADD"):
            continue
        if args.lstrip().startswith("["):
            words = json.loads(args)
        else:
            words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        for src in words[:-1]:
            copied[os.path.normpath(src)] = os.path.normpath(words[-1])
    needed = env("GREET_SOURCE_DIRS").split()
    patterns = dockerignore(root)
    for d in needed:
        if ignored(d, patterns):
            fail(f".dockerignore excludes {d}/, which the build needs")
        if "." in copied and copied["."] == ".":
            continue
        if d not in copied:
            fail(f"Dockerfile: the build stage does not COPY {d}/ (make all install reads it)")
        elif copied[d] != d:
            fail(f"Dockerfile: COPY {d} {copied[d]}: the Makefile expects it at ./{d}")
    if "Makefile" not in copied and "." not in copied:
        fail("Dockerfile: the build stage does not COPY the Makefile")


def check_dockerfile_packages(root):
    """The build stage installs every library's -dev package, the runtime stage its runtime package."""
    stages = dockerfile_stages(root)
    if len(stages) < 2:
        fail("Dockerfile: expected a build stage and a runtime stage")
        return
    build, runtime = apt_packages(stages[0][1]), apt_packages(stages[-1][1])
    for package in env("GREET_BUILD_PACKAGES").split():
        if package not in build:
            fail(f"Dockerfile: the build stage does not install {package} (the build links against it)")
    for package in env("GREET_RUNTIME_PACKAGES").split():
        if package not in runtime:
            fail(f"Dockerfile: the runtime stage does not install {package} (the programs need it)")


def check_dockerfile_misc(root):
    """Numeric user, SIGTERM, one PREFIX for build and install, the worker by default."""
    stages = dockerfile_stages(root)
    if not stages:
        fail("Dockerfile: no FROM")
        return
    runtime = stages[-1][1]
    if dockerfile_user_ids(root) is None:
        fail("Dockerfile: the runtime stage's USER is not a numeric UID[:GID]")
    elif dockerfile_user_ids(root)[0] == 0:
        fail("Dockerfile: runs as root")
    signals = [a for i, a in runtime if i == "STOPSIGNAL"]
    if signals and signals[-1].strip() != "SIGTERM":
        fail(f"Dockerfile: STOPSIGNAL {signals[-1]}, the worker drains on SIGTERM")
    prefix = env("GREET_PREFIX")
    runs = " ".join(a for i, a in stages[0][1] if i == "RUN")
    prefixes = set(re.findall(r"\bPREFIX=(\S+)", runs))
    if len(prefixes) > 1:
        fail(f"Dockerfile: make runs with several PREFIXes {sorted(prefixes)}; greet-admin looks for "
             "sql/ where it was compiled to")
    if not re.search(r"\bmake\b[^&;]*\binstall\b", runs):
        fail("Dockerfile: the build stage does not run make install")
    copies = [a for i, a in runtime if i == "COPY" and "--from" in a]
    installed = prefixes.pop() if len(prefixes) == 1 else prefix
    if not any(installed in a for a in copies):
        fail(f"Dockerfile: the runtime stage copies nothing from the build's {installed}")
    cmds = [a for i, a in runtime if i in ("CMD", "ENTRYPOINT")]
    if not cmds or WORKER_NAME not in cmds[-1]:
        fail("Dockerfile: the default command is not greet-worker")


CHECKS = {
    "unit-timeout": check_unit_timeout,
    "unit-settings": check_unit_settings,
    "env-example": check_env_example,
    "k8s-parse": check_k8s_parse,
    "k8s-kustomization": check_k8s_kustomization,
    "k8s-probes": check_k8s_probes,
    "k8s-grace": check_k8s_grace,
    "k8s-security": check_k8s_security,
    "k8s-secret-refs": check_k8s_secret_refs,
    "k8s-scaledobject": check_k8s_scaledobject,
    "k8s-job": check_k8s_job,
    "k8s-images": check_k8s_images,
    "compose-worker": check_compose_worker,
    "compose-migrate": check_compose_migrate,
    "compose-env": check_compose_env,
    "dockerfile-copies": check_dockerfile_copies,
    "dockerfile-packages": check_dockerfile_packages,
    "dockerfile-misc": check_dockerfile_misc,
}


def main(argv):
    if len(argv) < 3 or argv[1] not in CHECKS:
        print(f"usage: {argv[0]} CHECK ROOT [COMPOSE-CONFIG]; checks: {' '.join(CHECKS)}", file=sys.stderr)
        return 2
    try:
        CHECKS[argv[1]](*argv[2:])
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        fail(f"{type(e).__name__}: {e}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
