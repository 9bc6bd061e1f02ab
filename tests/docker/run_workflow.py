"""Run one job of a GitHub Actions workflow on the local Docker, the way a
runner would, far enough to test docker/github-actions.yml offline.

  run_workflow.py WORKFLOW --job JOB --image IMAGE [--skip STEP_ID]...

- Service containers: a fresh network, each service started with its image
  (IMAGE replaces the image expression, which names a registry), network
  alias = service id, its env, ports (`N/tcp` gets a host port from Docker)
  and options; then, as the runner does, wait until Docker reports the
  container healthy. A port published on different host ports for IPv4 and
  IPv6 (Docker can do that with `N/tcp`) is an error: a client could reach
  another container port, depending on what its host name resolves to.
- Steps: `uses:` steps are skipped (actions cannot run here), as are the
  step ids given with --skip. `run:` steps run with the runner's default
  shell, `bash --noprofile --norc -eo pipefail`, with RUNNER_TEMP,
  GITHUB_ENV (lines it receives become environment for later steps), the
  job's and step's env.
- Expressions: only `${{ job.services.ID.ports['N'] }}` (the host port of
  container port N) is evaluated; any other expression in what runs is an
  error, so the file cannot drift into something this runner ignores.
- Everything it starts is removed at the end. Exits 1 if a step failed.

Needs python3-yaml (a dependency of Debian's python3-azure).
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
PORT_EXPR = re.compile(r"""^job\.services\.([A-Za-z0-9_-]+)\.ports\[\s*['"]?(\d+)['"]?\s*\]$""")
HEALTH_TIMEOUT_S = 120
STEP_TIMEOUT_S = 300


def docker(*args, check=True, capture=True):
    r = subprocess.run(["docker", *args], text=True,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE if capture else None)
    if check and r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workflow")
    ap.add_argument("--job", required=True)
    ap.add_argument("--image", required=True, help="local image used for every service")
    ap.add_argument("--skip", action="append", default=[], help="step id to skip")
    args = ap.parse_args()

    with open(args.workflow) as f:
        wf = yaml.safe_load(f)
    job = wf["jobs"][args.job]
    tag = f"kvmock-wf-{os.getpid()}"
    network = f"{tag}-net"
    containers = {}
    ports = {}  # (service, container port) -> host port
    failed = []

    def evaluate(text, where):
        def sub(m):
            pm = PORT_EXPR.match(m.group(1))
            if not pm:
                raise ValueError(f"{where}: unsupported expression ${{{{ {m.group(1)} }}}}")
            key = (pm.group(1), pm.group(2))
            if key not in ports:
                raise ValueError(f"{where}: no service port {key}")
            return ports[key]
        return EXPR.sub(sub, str(text))

    base_env = {k: v for k, v in os.environ.items()
                if not re.match(r"^(AZURE_|IDENTITY_|MSI_|IMDS_|KVMOCK_|REQUESTS_CA_BUNDLE$|"
                                r"NODE_EXTRA_CA_CERTS$|SSL_CERT_FILE$|https?_proxy$|HTTPS?_PROXY$)", k)}
    runner_temp = tempfile.mkdtemp(prefix=f"{tag}-temp-")
    base_env.update({"CI": "true", "GITHUB_ACTIONS": "true", "RUNNER_TEMP": runner_temp})

    try:
        docker("network", "create", network)
        for sid, svc in (job.get("services") or {}).items():
            name = f"{tag}-{sid}"
            cmd = ["run", "-d", "--name", name, "--network", network, "--network-alias", sid]
            for k, v in (svc.get("env") or {}).items():
                cmd += ["-e", f"{k}={evaluate(v, f'services.{sid}.env.{k}')}"]
            for p in svc.get("ports") or []:
                p = str(p)
                cmd += ["-p", p.split("/")[0] if ":" in p else p]
            cmd += shlex.split(svc.get("options") or "")
            cmd.append(args.image)
            print(f"workflow: service {sid}: docker {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
            docker(*cmd)
            containers[sid] = name
            for p in svc.get("ports") or []:
                cport = str(p).split(":")[-1].split("/")[0]
                out = docker("port", name, f"{cport}/tcp").stdout.split()
                hosts = {o.rsplit(":", 1)[1] for o in out}
                if len(hosts) != 1:
                    # A client whose host name resolves to the other family
                    # would reach another container port.
                    raise RuntimeError(f"service {sid}: port {cport} is published on different host "
                                       f"ports for IPv4 and IPv6: {' '.join(out)}")
                ports[(sid, cport)] = hosts.pop()
            deadline = time.time() + HEALTH_TIMEOUT_S
            while True:
                st = docker("inspect", "-f",
                            "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
                            name).stdout.split()
                if st[0] != "running":
                    raise RuntimeError(f"service {sid} is {st[0]}:\n{docker('logs', name).stderr}")
                if st[1] in ("healthy", "none"):
                    break
                if time.time() > deadline:
                    raise RuntimeError(f"service {sid} not healthy after {HEALTH_TIMEOUT_S} s ({st[1]})")
                time.sleep(0.5)
            print(f"workflow: service {sid} is {st[1]}; ports "
                  f"{', '.join(f'{c}->{h}' for (s, c), h in ports.items() if s == sid)}", flush=True)

        job_env = {k: evaluate(v, f"jobs.{args.job}.env.{k}") for k, v in (job.get("env") or {}).items()}
        exported = {}
        for i, step in enumerate(job["steps"]):
            label = step.get("name") or step.get("id") or step.get("uses") or f"step {i}"
            if "uses" in step:
                print(f"workflow: SKIP {label} (uses: {step['uses']})", flush=True)
                continue
            if step.get("id") in args.skip:
                print(f"workflow: SKIP {label} (--skip {step['id']})", flush=True)
                continue
            env = dict(base_env)
            env.update(job_env)
            env.update(exported)
            env.update({k: evaluate(v, f"{label}.env.{k}") for k, v in (step.get("env") or {}).items()})
            script = evaluate(step["run"], f"{label}.run")
            with tempfile.NamedTemporaryFile("w", suffix=".sh", dir=runner_temp, delete=False) as s:
                s.write(script)
            genv = os.path.join(runner_temp, f"github_env_{i}")
            open(genv, "w").close()
            env["GITHUB_ENV"] = genv
            print(f"workflow: RUN {label}", flush=True)
            r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", s.name],
                               env=env, timeout=STEP_TIMEOUT_S)
            if r.returncode != 0:
                print(f"workflow: FAIL {label}: exit {r.returncode}", flush=True)
                failed.append(label)
                break
            with open(genv) as g:
                lines = g.read().splitlines()
            it = iter(lines)
            for line in it:
                if "<<" in line and "=" not in line.split("<<", 1)[0]:
                    k, delim = line.split("<<", 1)
                    val = []
                    for nxt in it:
                        if nxt == delim:
                            break
                        val.append(nxt)
                    exported[k] = "\n".join(val)
                elif "=" in line:
                    k, v = line.split("=", 1)
                    exported[k] = v
            print(f"workflow: PASS {label}", flush=True)
    except Exception as e:  # noqa: BLE001
        print(f"workflow: FAIL {e}", flush=True)
        failed.append(str(e))
    finally:
        for sid, name in containers.items():
            if failed:
                logs = docker("logs", "--tail", "20", name, check=False)
                print(f"--- service {sid} log (tail) ---\n{logs.stdout}{logs.stderr}", flush=True)
            docker("rm", "-fv", name, check=False)
        docker("network", "rm", network, check=False)
        subprocess.run(["rm", "-rf", runner_temp])
    print("workflow: " + ("FAILED" if failed else "ALL PASSED"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
