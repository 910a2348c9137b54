#!/usr/bin/env python3
"""checks.py CHECK ROOT [FILE]: one check of the deployment files under ROOT.

Exits 0 when the check holds, 1 with the reasons on stdout when it does
not, 2 on bad usage.  ROOT is the repository, or a copy of its deployment
files (deploy/, docker/, Dockerfile, .dockerignore, docker-compose.yml,
scripts/compose-secrets.sh, and the secrets/ that script made in the copy)
that tests/deploy/run.sh broke on purpose.  Facts about the programs and the
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


_K8S_DOCUMENTS = {}


def k8s_documents(root):
    """[(file, document)] of every YAML file in deploy/kubernetes (read once)."""
    if root in _K8S_DOCUMENTS:
        return _K8S_DOCUMENTS[root]
    docs = _K8S_DOCUMENTS[root] = []
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
        if len(pod_spec(job).get("containers") or []) != 1:
            container(job)  # says why
        for jc in all_containers(job):
            check_security("Job", f"{name} container {jc.get('name')}", job, jc, ids)


def all_containers(doc):
    spec = pod_spec(doc)
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def mode_readable(mode, pod):
    """Can the pod's non-root user read a Secret file of this mode?  The files
    are root's; with fsGroup they are that group's, a group every container
    of the pod is in."""
    if mode & 0o004:
        return True
    return bool(mode & 0o040) and pod.get("fsGroup") is not None


def secret_file(root, kind, doc, c, var):
    """(Secret name, key) of the file that c's env VAR_FILE names: a path in a
    read-only mount of a Secret volume, a key the Secret has, readable by the
    pod's user.  None, with the failure recorded, when it is not."""
    where = f"{kind} {dig(doc, 'metadata', 'name')} container {c.get('name')}"
    e = container_env(c).get(f"{var}_FILE")
    if e is None:
        fail(f"{where}: {var}_FILE is not set ({var} must come from a mounted Secret file)")
        return None
    path = e.get("value")
    if not isinstance(path, str) or not path.startswith("/"):
        fail(f"{where}: {var}_FILE={path!r} is not an absolute path")
        return None
    volumes = {v.get("name"): v for v in pod_spec(doc).get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        mount = (m.get("mountPath") or "").rstrip("/")
        if not mount or not path.startswith(mount + "/"):
            continue
        rel = path[len(mount) + 1:]
        if m.get("subPath"):
            fail(f"{where}: {var}_FILE is in a subPath mount, which never sees a rotated Secret")
            return None
        v = volumes.get(m.get("name"))
        sec = (v or {}).get("secret")
        if not isinstance(sec, dict):
            fail(f"{where}: {var}_FILE={path} is in volume {m.get('name')!r}, which is not a Secret")
            return None
        if m.get("readOnly") is not True:
            fail(f"{where}: the Secret volume {m.get('name')!r} is not mounted readOnly")
        name = sec.get("secretName")
        known = secrets(root)
        if name not in known:
            fail(f"{where}: volume {m.get('name')!r}: Secret {name!r} is not defined in {K8S}")
            return None
        items = sec.get("items")
        if items:
            item = [i for i in items if os.path.normpath(i.get("path", "")) == rel]
            if not item:
                fail(f"{where}: {var}_FILE={path}: volume {m.get('name')!r} projects no {rel!r} "
                     f"(items: {sorted(i.get('path') for i in items)})")
                return None
            key, mode = item[0].get("key"), item[0].get("mode", sec.get("defaultMode", 0o644))
        else:
            key, mode = rel, sec.get("defaultMode", 0o644)
        if key not in known[name]:
            fail(f"{where}: {var}_FILE={path}: Secret {name!r} has no key {key!r} (keys: {sorted(known[name])})")
            return None
        if not isinstance(mode, int) or not mode_readable(mode, pod_spec(doc).get("securityContext") or {}):
            shown = oct(mode) if isinstance(mode, int) else repr(mode)
            fail(f"{where}: {var}_FILE={path}: mode {shown} is "
                 "not readable by the pod's user (0440 needs the pod's fsGroup; else 0444)")
        return name, key
    fail(f"{where}: {var}_FILE={path} is in no volume mounted in the container")
    return None


def secret_value(root, ref):
    for _, s in by_kind(root, "Secret"):
        if ref and dig(s, "metadata", "name") == ref[0]:
            return str((s.get("stringData") or {}).get(ref[1], ""))
    return None


def check_k8s_secret_refs(root):
    """URLs from mounted Secret files (the _FILE forms); every reference names a Secret key defined
    here; Secrets carry placeholders."""
    for kind in ("Deployment", "Job"):
        for _, doc in by_kind(root, kind):
            name = dig(doc, "metadata", "name")
            for c in all_containers(doc):
                for e in c.get("env") or []:
                    ref = dig(e, "valueFrom", "secretKeyRef")
                    if ref:
                        secret_ref_ok(root, f"{kind} {name} env {e.get('name')}", ref.get("name"), ref.get("key"))
                    if e.get("name") in ("AMQP_URL", "DATABASE_URL"):
                        fail(f"{kind} {name} container {c.get('name')}: {e.get('name')} in the environment; "
                             f"use {e.get('name')}_FILE and a mounted Secret")
                    elif str(e.get("name", "")).endswith("_FILE"):
                        secret_file(root, kind, doc, c, e["name"][:-len("_FILE")])
                for src in c.get("envFrom") or []:
                    ref = src.get("secretRef")
                    if ref and ref.get("name") not in secrets(root):
                        fail(f"{kind} {name}: envFrom Secret {ref.get('name')!r} is not defined")
            for v in pod_spec(doc).get("volumes") or []:
                sec = v.get("secret")
                if isinstance(sec, dict):
                    for item in sec.get("items") or []:
                        secret_ref_ok(root, f"{kind} {name} volume {v.get('name')}", sec.get("secretName"),
                                      item.get("key"))
    d, c = worker_container(root)
    if c:
        for var in ("AMQP_URL", "DATABASE_URL"):
            secret_file(root, "Deployment", d, c, var)
    for _, s in by_kind(root, "Secret"):
        for key, value in (s.get("stringData") or {}).items():
            if "CHANGE-ME" not in str(value):
                fail(f"Secret {dig(s, 'metadata', 'name')} {key}: not a marked placeholder (CHANGE-ME)")


def url_user(url):
    """The user name of a URL (the first, when AMQP_URL lists several)."""
    from urllib.parse import urlsplit
    try:
        return urlsplit(re.split(r"[,;]", url or "")[0].strip()).username
    except ValueError:
        return None


def check_k8s_users(root):
    """Each pod's URLs name its least-privilege user; the broker-setup Job creates them, then declares."""
    d, c = worker_container(root)
    want = []
    if c:
        want += [("Deployment", d, c, "AMQP_URL", "greet-worker"), ("Deployment", d, c, "DATABASE_URL", "greet_worker")]
    jobs = {}
    for _, job in by_kind(root, "Job"):
        for jc in all_containers(job):
            jobs[tuple((jc.get("command") or []) + (jc.get("args") or []))[:2]] = (job, jc)
    setup = jobs.get(("greet-admin", "declare"))
    users = jobs.get(("greet-users",))
    if not setup or not users:
        fail("no Job with a greet-users init container and a greet-admin declare container "
             "(the broker's users and queues)")
    else:
        if setup[0] is not users[0]:
            fail("greet-users and greet-admin declare are not in one Job (the users must exist first)")
        elif users[1] not in (pod_spec(users[0]).get("initContainers") or []):
            fail(f"Job {dig(users[0], 'metadata', 'name')}: greet-users is not an init container: "
                 "greet-admin declare would race it")
        want.append(("Job", setup[0], setup[1], "AMQP_URL", "greet-admin"))
        for user in ("ADMIN", "WORKER", "PRODUCER", "SUBSCRIBER"):
            secret_file(root, "Job", users[0], users[1], f"GREET_{user}_AMQP_PASSWORD")
        secret_file(root, "Job", users[0], users[1], "RABBITMQ_API_PASSWORD")
    for kind, doc, cont, var, user in want:
        ref = secret_file(root, kind, doc, cont, var)
        got = url_user(secret_value(root, ref)) if ref else None
        if ref and got != user:
            fail(f"{kind} {dig(doc, 'metadata', 'name')}: {var} (Secret {ref[0]} key {ref[1]}) is user "
                 f"{got!r}, expected the least-privilege {user!r}")
    # KEDA's scaler: a passive inspect of the jobs queue, which greet-worker may.
    for _, ta in by_kind(root, "TriggerAuthentication"):
        for r in dig(ta, "spec", "secretTargetRef", default=[]) or []:
            if r.get("parameter") == "host":
                got = url_user(secret_value(root, (r.get("name"), r.get("key"))))
                if got != "greet-worker":
                    fail(f"TriggerAuthentication {dig(ta, 'metadata', 'name')}: host is user {got!r}, "
                         "expected greet-worker (least privilege)")


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
    ref = secret_file(root, "Job", job, jc, "DATABASE_URL")
    if not ref:
        return
    worker_secrets = set()
    if c:
        worker_ref = secret_file(root, "Deployment", d, c, "DATABASE_URL")
        if worker_ref == ref:
            fail("Job: migrate uses the workers' DATABASE_URL; greet_worker may only read")
        worker_secrets = {v.get("secret", {}).get("secretName") for v in pod_spec(d).get("volumes") or []
                          if isinstance(v.get("secret"), dict)}
    for v in pod_spec(job).get("volumes") or []:
        if isinstance(v.get("secret"), dict) and v["secret"].get("secretName") in worker_secrets:
            fail(f"Job: migrate mounts the workers' Secret {v['secret'].get('secretName')!r}; "
                 "the owner's URL belongs in a Secret of its own")
    if url_user(secret_value(root, ref)) == "greet_worker":
        fail("Job: migrate's DATABASE_URL is greet_worker, which may only read")
    if "GREET_SQL_DIR" in container_env(jc):
        fail("Job: GREET_SQL_DIR is set; the image's installed sql/ is the one to apply")


def check_k8s_images(root):
    """Deployment and Job run one image, the one kustomization.yaml rewrites."""
    with open(os.path.join(root, K8S, "kustomization.yaml"), encoding="utf-8") as f:
        k = yaml.safe_load(f) or {}
    names = {i.get("name") for i in k.get("images") or []}
    for kind in ("Deployment", "Job"):
        for _, doc in by_kind(root, kind):
            for c in all_containers(doc):
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
    migrate = [n for n, s in services.items()
               if (words(s.get("entrypoint")) + words(s.get("command")))[:2] == ["greet-admin", "migrate"]]
    if len(migrate) != 1:
        fail(f"compose: expected one service running greet-admin migrate, found {migrate}")
        return
    name = migrate[0]
    m = services[name]
    if str(m.get("restart", "no")) not in ("no", "on-failure"):
        fail(f"compose {name}: restart {m.get('restart')!r}: a one-shot service must not restart when done")
    url = compose_value(root, c, name, "DATABASE_URL") or ""
    if url_user(url) == "greet_worker":
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


SECRETS_DIR = "secrets"  # beside docker-compose.yml, made by scripts/compose-secrets.sh
SECRETS_SCRIPT = "scripts/compose-secrets.sh"
RUN_SECRETS = "/run/secrets"

# Per service: what it runs, and the user each URL must name (README, "Least
# privilege"; deploy/rabbitmq/greet-users.sh; sql/002_worker_role.sql).
COMPOSE_USERS = {
    "worker": (["greet-worker"], {"AMQP_URL": "greet-worker", "DATABASE_URL": "greet_worker"}),
    "producer": (["greet-producer"], {"AMQP_URL": "greet-producer"}),
    "replies": (["greet-replies"], {"AMQP_URL": "greet-subscriber"}),
    "declare": (["greet-admin", "declare"], {"AMQP_URL": "greet-admin"}),
    "migrate": (["greet-admin", "migrate"], {"DATABASE_URL": "postgres"}),
}
GREET_PROGRAMS = ("greet-worker", "greet-producer", "greet-replies", "greet-admin")


def words(value):
    return shlex.split(value) if isinstance(value, str) else list(value or [])


def service_command(service):
    return words(service.get("entrypoint")) + words(service.get("command"))


def service_secret_mounts(service):
    """{path in the container: secret name} of a service's secrets:."""
    out = {}
    for entry in service.get("secrets") or []:
        source, target = (entry, None) if isinstance(entry, str) else (entry.get("source"), entry.get("target"))
        target = target or source
        out[target if str(target).startswith("/") else f"{RUN_SECRETS}/{target}"] = source
    return out


def host_path(root, config, path):
    """A host path of the compose file (docker-compose config makes them absolute) under ROOT."""
    return os.path.realpath(path if os.path.isabs(path) else os.path.join(root, path))


def first_line(path):
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\r\n")


def compose_value(root, c, name, var):
    """The value a service reads for VAR: VAR, or the first line of the secret
    file VAR_FILE names (which must be a secret mounted in the service, defined
    at top level by a file).  None, with the failure recorded, when neither."""
    service = (c.get("services") or {}).get(name) or {}
    e = compose_env(service)
    if e.get(var) not in (None, ""):
        return str(e[var])
    path = e.get(f"{var}_FILE")
    if path in (None, ""):
        fail(f"compose {name}: neither {var} nor {var}_FILE is set")
        return None
    mounts = service_secret_mounts(service)
    if path not in mounts:
        fail(f"compose {name}: {var}_FILE={path} is no secret mounted in {name} "
             f"(its secrets: {sorted(mounts) or 'none'})")
        return None
    top = (c.get("secrets") or {}).get(mounts[path])
    if not isinstance(top, dict) or not top.get("file"):
        fail(f"compose {name}: secret {mounts[path]!r} is not defined at top level with a file:")
        return None
    try:
        return first_line(host_path(root, c, top["file"]))
    except OSError as e:
        fail(f"compose {name}: {var}_FILE: secret {mounts[path]!r}: {e} (not a file {SECRETS_SCRIPT} creates)")
        return None


def url_parts(url):
    """(user, password, host, port, path) of a URL; None if unreadable."""
    from urllib.parse import urlsplit
    try:
        u = urlsplit(url or "")
        return u.username, u.password, u.hostname, u.port, u.path
    except ValueError:
        return None


def secret_in_value(value):
    """A password in a URL's user information."""
    return re.search(r"://[^/@\s]*:[^/@\s]+@", str(value or "")) is not None


def check_compose_secrets(root, config):
    """Secrets from files: every greet service reads its URLs through the _FILE forms, from secrets
    defined at top level, each a file scripts/compose-secrets.sh creates; nothing secret in the
    environment."""
    c = compose(config)
    services = c.get("services") or {}
    top = c.get("secrets") or {}
    secrets_dir = os.path.realpath(os.path.join(root, SECRETS_DIR))
    used = set()
    for name, s in services.items():
        for path, source in service_secret_mounts(s).items():
            if source not in top:
                fail(f"compose {name}: secret {source!r} is not defined at top level (secrets: {sorted(top)})")
        e = compose_env(s)
        for var, value in e.items():
            if var.endswith("_FILE"):
                if value not in service_secret_mounts(s):
                    fail(f"compose {name}: {var}={value} is no secret mounted in {name}")
            elif re.search(r"PASS(WORD)?$", var) or secret_in_value(value):
                fail(f"compose {name}: {var} holds a secret in the environment; use {var}_FILE and a secret")
        for vol in s.get("volumes") or []:
            source = vol.get("source") if isinstance(vol, dict) else str(vol).split(":")[0]
            if source and host_path(root, c, source).startswith(secrets_dir + os.sep):
                used.add(host_path(root, c, source))
                if not os.path.isfile(host_path(root, c, source)):
                    fail(f"compose {name}: mounts {source}, which {SECRETS_SCRIPT} does not create")
        command = service_command(s)
        if command[:1] and command[0] in GREET_PROGRAMS:
            for var in ("AMQP_URL", "DATABASE_URL"):
                if e.get(var) not in (None, ""):
                    fail(f"compose {name}: plain {var}"
                         f"{' with a password' if secret_in_value(e[var]) else ''}; use {var}_FILE")
        if name in COMPOSE_USERS:
            for var in COMPOSE_USERS[name][1]:
                if f"{var}_FILE" not in e:
                    fail(f"compose {name}: {var}_FILE is not set ({var} must come from a secret file)")
    for sname, spec in top.items():
        f = (spec or {}).get("file") if isinstance(spec, dict) else None
        if not f:
            fail(f"compose: secret {sname!r} has no file: (external secrets need swarm)")
            continue
        path = host_path(root, c, f)
        used.add(path)
        if os.path.dirname(path) != secrets_dir:
            fail(f"compose: secret {sname!r} is {f}, not a file in ./{SECRETS_DIR}/")
        elif not os.path.isfile(path):
            fail(f"compose: secret {sname!r}: {os.path.basename(path)} is not a file {SECRETS_SCRIPT} creates")
    # What the script made (run.sh ran it into this tree): all used, modes as compose needs.
    if not os.path.isdir(secrets_dir):
        fail(f"./{SECRETS_DIR}/ does not exist: {SECRETS_SCRIPT} was not run")
        return
    if os.stat(secrets_dir).st_mode & 0o077:
        fail(f"./{SECRETS_DIR}/ is mode {oct(os.stat(secrets_dir).st_mode & 0o777)}, expected 0700")
    for entry in sorted(os.listdir(secrets_dir)):
        path = os.path.join(secrets_dir, entry)
        if path not in used:
            fail(f"{SECRETS_SCRIPT} creates {entry}, which no service uses")
        mode = os.stat(path).st_mode & 0o777
        if mode != 0o644:
            fail(f"{SECRETS_SCRIPT}: {entry} is mode {oct(mode)}, expected 0644 (compose mounts it as it "
                 "is; the containers' users must read it)")


def check_compose_users(root, config):
    """Each service's URLs name its least-privilege user, with the password that user is given."""
    c = compose(config)
    services = c.get("services") or {}
    bu = services.get("broker-users") or {}
    pg = services.get("postgres") or {}
    pg_db = compose_env(pg).get("POSTGRES_DB") or compose_env(pg).get("POSTGRES_USER") or "postgres"
    # The passwords the users are given: greet-users.sh's variables; the postgres image's.
    def given(user):
        if user.startswith("greet-"):
            return compose_value(root, c, "broker-users", f"GREET_{user[6:].upper()}_AMQP_PASSWORD")
        if user == "greet_worker":
            return compose_value(root, c, "postgres", "GREET_WORKER_PASSWORD")
        if user == (compose_env(pg).get("POSTGRES_USER") or "postgres"):
            return compose_value(root, c, "postgres", "POSTGRES_PASSWORD")
        fail(f"compose: user {user!r} is given a password by no service")
        return None
    for name, (command, urls) in COMPOSE_USERS.items():
        s = services.get(name)
        if not isinstance(s, dict):
            fail(f"compose: no {name} service")
            continue
        if service_command(s)[:len(command)] != command:
            fail(f"compose {name}: runs {service_command(s)}, expected {' '.join(command)}")
        for var, user in urls.items():
            url = compose_value(root, c, name, var)
            if url is None:
                continue
            parts = url_parts(url)
            if not parts:
                fail(f"compose {name}: {var} is no URL")
                continue
            got_user, password, host, port, path = parts
            if got_user != user:
                fail(f"compose {name}: {var} is user {got_user!r}, expected the least-privilege {user!r}")
                continue
            want = given(user)
            if want is not None and password != want:
                fail(f"compose {name}: {var}'s password for {user} is not the one {user} is given")
            server, want_port = ("rabbitmq", 5672) if var == "AMQP_URL" else ("postgres", 5432)
            if host != server or (port or want_port) != want_port:
                fail(f"compose {name}: {var} names {host}:{port}, expected the {server} service, port {want_port}")
            if var == "DATABASE_URL" and path.strip("/") != pg_db:
                fail(f"compose {name}: DATABASE_URL names database {path.strip('/')!r}, postgres creates {pg_db!r}")
    # The broker's administrator: what rabbitmq creates (conf.d), what broker-users logs in as.
    rb = services.get("rabbitmq") or {}
    confs = []
    for vol in rb.get("volumes") or []:
        if isinstance(vol, dict):
            source, target = vol.get("source"), vol.get("target")
        else:
            source, target = (str(vol).split(":") + [""])[:2]
        if str(target).startswith("/etc/rabbitmq/conf.d/"):
            confs.append(host_path(root, c, source))
    settings = {}
    for conf in confs:
        try:
            with open(conf, encoding="utf-8") as f:
                for line in f:
                    m = re.fullmatch(r"\s*([\w.]+)\s*=\s*(.*?)\s*", line.rstrip("\n"))
                    if m:
                        settings[m.group(1)] = m.group(2)
        except OSError as e:
            fail(f"compose rabbitmq: conf.d file: {e}")
    # A worker holds up to prefetch deliveries whole: the broker's message
    # size limit (128 MiB by default) bounds its memory.  Above a job's
    # 64 KiB, so that an oversized job still comes to be answered too_large.
    limit = settings.get("max_message_size")
    if limit is None:
        fail("compose rabbitmq: no max_message_size in a conf.d file: any publisher could make "
             "a worker hold prefetch x 128 MiB (deploy/rabbitmq/greet.conf sets 1 MiB)")
    elif not limit.isdigit() or not 65536 < int(limit) <= 8 << 20:
        fail(f"compose rabbitmq: max_message_size = {limit}: expected bytes above a job's 64 KiB, "
             "at most 8 MiB")
    env_rb = compose_env(rb)
    if any(k.startswith("RABBITMQ_DEFAULT_") for k in env_rb):
        fail("compose rabbitmq: RABBITMQ_DEFAULT_* in the environment; the administrator comes from a conf.d file")
    if "default_user" not in settings or "default_pass" not in settings:
        fail("compose rabbitmq: no conf.d file mounted at /etc/rabbitmq/conf.d/ with default_user and default_pass")
        return
    if settings.get("default_user_tags.administrator") != "true":
        fail("compose rabbitmq: default_user_tags.administrator is not true: greet-users.sh cannot create users")
    if compose_env(bu).get("RABBITMQ_API_USER") != settings["default_user"]:
        fail(f"compose broker-users: RABBITMQ_API_USER={compose_env(bu).get('RABBITMQ_API_USER')!r}, "
             f"the broker's administrator is {settings['default_user']!r}")
    if compose_value(root, c, "broker-users", "RABBITMQ_API_PASSWORD") != settings["default_pass"]:
        fail("compose broker-users: RABBITMQ_API_PASSWORD is not the administrator's default_pass")


def depends(service, other):
    d = service.get("depends_on") or {}
    if isinstance(d, list):
        return "service_started" if other in d else None
    return dig(d, other, "condition", default="service_started") if other in d else None


def check_compose_order(root, config):
    """Users, then queues, then the programs: broker-users after a healthy broker, declare after
    broker-users, the programs after declare (and the workers after migrate)."""
    c = compose(config)
    services = c.get("services") or {}
    want = [
        ("broker-users", "rabbitmq", "service_healthy"),
        ("declare", "broker-users", "service_completed_successfully"),
        ("worker", "declare", "service_completed_successfully"),
        ("worker", "migrate", "service_completed_successfully"),
        ("producer", "declare", "service_completed_successfully"),
        ("replies", "declare", "service_completed_successfully"),
    ]
    for name, other, condition in want:
        if name not in services or other not in services:
            fail(f"compose: no {name if name not in services else other} service")
            continue
        got = depends(services[name], other)
        if got != condition:
            fail(f"compose {name}: depends_on {other} condition {got!r}, expected {condition}")
    for name in ("broker-users", "declare", "migrate"):
        s = services.get(name) or {}
        if str(s.get("restart", "no")) not in ("no", "on-failure"):
            fail(f"compose {name}: restart {s.get('restart')!r}: a one-shot service must not restart when done")
    bu = services.get("broker-users") or {}
    if service_command(bu)[:1] != ["greet-users"]:
        fail(f"compose broker-users: runs {service_command(bu)}, expected greet-users")
    api = url_parts(compose_env(bu).get("RABBITMQ_API", ""))
    if not api or api[2] != "rabbitmq" or api[3] != 15672:
        fail(f"compose broker-users: RABBITMQ_API={compose_env(bu).get('RABBITMQ_API')!r}, "
             "expected the rabbitmq service's management API (http://rabbitmq:15672)")
    image = str((services.get("rabbitmq") or {}).get("image", ""))
    if not image.endswith("-management"):
        fail(f"compose rabbitmq: image {image!r} has no management API (a -management image)")
    # greet-users in the greet image: copied from deploy/rabbitmq/greet-users.sh into the PATH.
    script = "deploy/rabbitmq/greet-users.sh"
    stages = dockerfile_stages(root)
    copies = []
    for instruction, args in (stages[-1][1] if stages else []):
        if instruction in ("COPY", "ADD") and "--from" not in args:
            w = [x for x in shlex.split(args) if not x.startswith("--")]
            copies.append((w[:-1], w[-1] if w else ""))
    dest = [d for srcs, d in copies if script in [os.path.normpath(x) for x in srcs]]
    if not dest:
        fail(f"Dockerfile: the runtime stage does not COPY {script} (broker-users runs greet-users)")
    elif dest[0] not in ("/usr/local/bin/greet-users", "/usr/bin/greet-users"):
        fail(f"Dockerfile: COPY {script} {dest[0]}: broker-users runs greet-users, from the PATH")
    if ignored(script, dockerignore(root)):
        fail(f".dockerignore excludes {script}, which the image needs")
    if os.path.exists(os.path.join(root, script)) and not os.access(os.path.join(root, script), os.X_OK):
        fail(f"{script} is not executable: COPY keeps its mode, and greet-users would not run")
    if "curl" not in (apt_packages(stages[-1][1]) if stages else set()):
        fail("Dockerfile: the runtime stage does not install curl, which greet-users needs")


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
    "k8s-users": check_k8s_users,
    "k8s-job": check_k8s_job,
    "k8s-images": check_k8s_images,
    "compose-worker": check_compose_worker,
    "compose-migrate": check_compose_migrate,
    "compose-secrets": check_compose_secrets,
    "compose-users": check_compose_users,
    "compose-order": check_compose_order,
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
    for p in dict.fromkeys(problems):
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
