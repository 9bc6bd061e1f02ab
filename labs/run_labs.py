#!/usr/bin/python3
"""Run the labs exactly as written, so that the documentation cannot rot.

    /usr/bin/python3 labs/run_labs.py --kvmock build/kvmock [--keep] [--verbose]

1. Makes a scratch folder that looks like a clone after the build: `labs`
   (a link to this folder), `build/kvmock` (a link to --kvmock), and nothing
   else; `lab-data` and `lab-work` appear there as the labs run.
2. Starts kvmock with the command of labs/README.md ("build/kvmock --data
   ./lab-data --config labs/config.json"), on free ports instead of 8443 and
   8080, and waits for its ready line.
3. Takes the environment from the README's `export` block, run by bash in the
   scratch folder (so `$PWD/lab-data/...` means what it means for a learner).
4. For every labs/NN-*.md in order, runs each ```sh block with `bash -c` in
   the scratch folder and compares what it prints (stdout and stderr
   together) with the ```output block that follows it. The lab's last step
   must run its labs/checks/NN-check.py, and print "lab N: PASS".
   A ```restart block (one line, "build/kvmock ...") is what the learner
   types in terminal 1 after Ctrl-C: kvmock is stopped with SIGTERM (exit
   code 0 expected) and started again with that command line, on the same
   ports and in the same folder (so with the same lab-data).
5. Stops kvmock with SIGTERM and insists on exit code 0 and a log free of
   sanitizer reports.

Exits 1 on any mismatch. The rules for blocks and placeholders are in
labs/README.md ("How the labs are tested"). In commands and expected outputs,
8443 and 8080 are replaced by the ports in use.
"""
import argparse
import difflib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

LABS = os.path.dirname(os.path.abspath(__file__))
DOC_HTTPS, DOC_HTTP = 8443, 8080
STEP_TIMEOUT = 120
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
PLACEHOLDER = re.compile(r"<([a-z][a-z0-9-]*)>")
FENCE = re.compile(r"^```(\S*)\s*$")


# ---- Markdown -------------------------------------------------------------------------------

class Step:
    """A ```sh block and its ```output block, or (restart=True) a ```restart block."""

    def __init__(self, path, line, command, expected, expected_line, restart=False):
        self.path, self.line, self.command = path, line, command
        self.expected, self.expected_line = expected, expected_line
        self.restart = restart

    def where(self):
        return f"{os.path.relpath(self.path, os.path.dirname(LABS))}:{self.line}"


def fenced_blocks(text):
    """[(info string, line number of the opening fence, content)] of every fenced block."""
    blocks, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"line {start}: the fenced block is not closed")
        blocks.append((m.group(1), start, "\n".join(body)))
        i += 1
    return blocks


def restart_command(body):
    """The words of a ```restart block: one `build/kvmock ...` line, ports left to the runner."""
    lines = [line for line in body.split("\n") if line.strip()]
    words = lines[0].split() if len(lines) == 1 else []
    if not words or words[0] != "build/kvmock":
        raise ValueError("a ```restart block must hold one line, `build/kvmock ...`")
    if any(w.startswith(("--https-port", "--http-port")) for w in words):
        raise ValueError("a ```restart block must not choose the ports (the runner keeps them)")
    return words


def parse_lab(path):
    """The steps of one lab: each ```sh block and the ```output block after it,
    and each ```restart block."""
    with open(path, encoding="utf-8") as f:
        blocks = fenced_blocks(f.read())
    steps, pending = [], None
    for info, line, body in blocks:
        if pending is not None:
            if info != "output":
                raise ValueError(f"{path}:{pending[0]}: a ```sh block must be followed by its "
                                 f"```output block (found ```{info} at line {line})")
            steps.append(Step(path, pending[0], pending[1], body, line))
            pending = None
        elif info == "sh":
            pending = (line, body)
        elif info == "restart":
            try:
                restart_command(body)
            except ValueError as e:
                raise ValueError(f"{path}:{line}: {e}") from None
            steps.append(Step(path, line, body.strip(), "", line, restart=True))
        elif info == "output":
            raise ValueError(f"{path}:{line}: an ```output block without a ```sh block before it")
    if pending is not None:
        raise ValueError(f"{path}:{pending[0]}: the last ```sh block has no ```output block")
    return steps


# ---- comparing outputs ----------------------------------------------------------------------

def normalize(text):
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    while lines and lines[0] == "":
        lines.pop(0)
    return lines


def bound(name):
    """Placeholders whose name ends in a digit keep their value for the whole run."""
    return name[-1].isdigit()


def line_regex(expected, bindings):
    """A regex for one expected line, and the names of the placeholders it binds."""
    out, pos, new = [], 0, []
    for m in PLACEHOLDER.finditer(expected):
        out.append(re.escape(expected[pos:m.start()]))
        name = m.group(1)
        if bound(name) and name in bindings:
            out.append(re.escape(bindings[name]))
        elif bound(name) and name in new:
            out.append(f"(?P={group(name)})")
        elif bound(name):
            out.append(f"(?P<{group(name)}>.+?)")
            new.append(name)
        else:
            out.append(".+?")
        pos = m.end()
    out.append(re.escape(expected[pos:]))
    return re.compile("".join(out) + r"\Z"), new


def group(name):
    return "p_" + name.replace("-", "_")


def compare(expected_text, actual_text, bindings):
    """None if the output matches (bindings then gain the new values), else why not."""
    expected, actual = normalize(expected_text), normalize(actual_text)
    if len(expected) != len(actual):
        return f"{len(actual)} lines instead of {len(expected)}"
    found = {}
    for n, (exp, act) in enumerate(zip(expected, actual), 1):
        regex, names = line_regex(exp, {**bindings, **found})
        m = regex.match(act)
        if not m:
            return f"line {n} differs\n  expected: {exp}\n  actual:   {act}"
        for name in names:
            value = m.group(group(name))
            twin = [k for k, v in {**bindings, **found}.items() if v == value and k != name]
            if twin:
                return f"line {n}: <{name}> has the same value as <{twin[0]}> ({value})"
            found[name] = value
    bindings.update(found)
    return None


# ---- kvmock ---------------------------------------------------------------------------------

def free_port(avoid=()):
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid and port not in (DOC_HTTPS, DOC_HTTP):
            return port


def readme_start_command():
    """The README's command that starts kvmock in lab mode, as a list of words."""
    with open(os.path.join(LABS, "README.md"), encoding="utf-8") as f:
        for info, _, body in fenced_blocks(f.read()):
            for line in body.split("\n"):
                if info == "sh" and line.startswith("build/kvmock ") and "labs/config.json" in line:
                    return line.split("#")[0].split()
    raise SystemExit("labs/README.md has no `build/kvmock ... --config labs/config.json` line")


def readme_env_block():
    with open(os.path.join(LABS, "README.md"), encoding="utf-8") as f:
        for info, _, body in fenced_blocks(f.read()):
            if info == "sh" and "export IDENTITY_ENDPOINT=" in body:
                return body
    raise SystemExit("labs/README.md has no ```sh block with `export IDENTITY_ENDPOINT=`")


def ports_in(text, https, http):
    text = re.sub(rf"(?<![0-9]){DOC_HTTPS}(?![0-9])", str(https), text)
    return re.sub(rf"(?<![0-9]){DOC_HTTP}(?![0-9])", str(http), text)


class Server:
    def __init__(self, binary, workdir):
        self.binary, self.workdir = binary, workdir
        self.proc = None
        self.log_path = os.path.join(workdir, "kvmock.log")

    def start(self, words, ports=None):
        """Start `words` (a `build/kvmock ...` command line) on free ports, or on PORTS
        (https, http) again, and wait for its ready line."""
        for attempt in range(10 if ports else 3):
            if ports:
                self.https, self.http = ports
            else:
                self.https = free_port()
                self.http = free_port({self.https})
            cmd = [self.binary] + words[1:] + ["--https-port", str(self.https),
                                               "--http-port", str(self.http)]
            env = {k: v for k, v in os.environ.items() if not k.startswith("KVMOCK_")}
            start = len(self.log_text())
            with open(self.log_path, "ab") as log:
                log.write(("==== " + " ".join(cmd) + "\n").encode())
                log.flush()
                self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env,
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            deadline = time.time() + 30
            while time.time() < deadline:
                if "kvmock ready" in self.log_text()[start:]:
                    return
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            self.kill()
            if "Address already in use" not in self.log_text()[start:]:
                break
            time.sleep(0.5 if ports else 0)  # the same ports: give the old sockets time to go
        raise SystemExit("kvmock did not start:\n" + self.log_text()[-3000:])

    def restart(self, words):
        """Stop (SIGTERM) and start WORDS on the same ports; the stop's exit code."""
        rc = self.stop()
        self.start(words, (self.https, self.http))
        return rc

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self):
        """SIGTERM; the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self.proc = None
        return rc


# ---- running ----------------------------------------------------------------------------------

def lab_env(workdir, server):
    """The learner's environment: the README's export block, run by bash in workdir."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AZURE_", "KVMOCK_", "IDENTITY_", "MSI_", "IMDS_"))}
    # `python3` must be the interpreter with the Azure SDK: the one running this file
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["KVMOCK_HTTPS_PORT"], env["KVMOCK_HTTP_PORT"] = str(server.https), str(server.http)
    script = ports_in(readme_env_block(), server.https, server.http) + "\nenv -0\n"
    out = subprocess.run(["bash", "-c", script], cwd=workdir, env=env, check=True,
                         capture_output=True).stdout.decode()
    result = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE"):
        if name not in result:
            raise SystemExit(f"the README's export block does not set {name}")
    return result


def run_step(step, workdir, env, server):
    command = ports_in(step.command, server.https, server.http)
    try:
        proc = subprocess.run(["bash", "-c", command], cwd=workdir, env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=STEP_TIMEOUT)
        return proc.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        return (e.stdout or b"").decode(errors="replace") + f"\n[timed out after {STEP_TIMEOUT} s]"


def report(step, why, expected, actual):
    print(f"FAIL {step.where()}: {why}")
    print("---- command")
    print(step.command)
    print("---- expected (placeholders as written) / actual")
    for line in difflib.unified_diff(normalize(expected), normalize(actual), "expected",
                                     "actual", lineterm="", n=2):
        print(line)
    print("----")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kvmock", required=True, help="the kvmock binary")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--verbose", action="store_true", help="print every command and its output")
    args = ap.parse_args()
    binary = os.path.abspath(args.kvmock)

    labs = sorted(glob.glob(os.path.join(LABS, "[0-9][0-9]-*.md")))
    with open(os.path.join(LABS, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    failures = []
    for path in labs:
        if f"({os.path.basename(path)})" not in readme:
            failures.append(f"labs/README.md does not link {os.path.basename(path)}")
    try:
        plan = [(path, parse_lab(path)) for path in labs]
    except ValueError as e:
        raise SystemExit(f"FAIL {e}")
    for path, steps in plan:
        num = os.path.basename(path)[:2]
        if not steps or f"labs/checks/{num}-check.py" not in steps[-1].command:
            failures.append(f"{path}: the last step must run labs/checks/{num}-check.py")

    workdir = tempfile.mkdtemp(prefix="kvmock-labs-")
    os.symlink(LABS, os.path.join(workdir, "labs"))
    os.makedirs(os.path.join(workdir, "build"))
    os.symlink(binary, os.path.join(workdir, "build", "kvmock"))
    server = Server(binary, workdir)
    started = time.time()
    bindings, count = {}, 0
    try:
        server.start(readme_start_command())
        env = lab_env(workdir, server)
        print(f"kvmock on https {server.https} / http {server.http}; scratch folder {workdir}")
        for path, steps in plan:
            lab_started, lab_failures = time.time(), len(failures)
            for step in steps:
                count += 1
                if step.restart:
                    rc = server.restart(restart_command(step.command))
                    if args.verbose:
                        print(f"---- {step.where()}\nrestarted: {step.command} (stop: exit {rc})")
                    if rc != 0:
                        failures.append(f"{step.where()}: kvmock exited with {rc} on SIGTERM "
                                        "before the restart (expected 0)")
                    continue
                actual = run_step(step, workdir, env, server)
                expected = ports_in(step.expected, server.https, server.http)
                if args.verbose:
                    print(f"---- {step.where()}\n{step.command}\n{actual}")
                why = compare(expected, actual, bindings)
                if why is not None:
                    report(step, why, expected, actual)
                    failures.append(f"{step.where()}: {why}")
            num = int(os.path.basename(path)[:2])
            status = "ok" if len(failures) == lab_failures else "FAILED"
            print(f"{os.path.basename(path)}: {len(steps)} steps {status} "
                  f"({time.time() - lab_started:.1f} s)")
            if status == "ok" and f"lab {num}: PASS" not in actual:
                failures.append(f"{path}: the check did not print 'lab {num}: PASS'")
    finally:
        rc = server.stop() if server.proc is not None else 0
        if rc != 0:
            failures.append(f"kvmock exited with {rc} on SIGTERM (expected 0)")
        marks = [m for m in SANITIZER_MARKS if m in server.log_text()]
        if marks:
            failures.append(f"sanitizer reports in the kvmock log: {marks}")
        if failures or args.keep:
            print(f"kept {workdir} (kvmock log: {server.log_path})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{count} steps in {len(plan)} labs, {time.time() - started:.1f} s")
    for f in failures:
        print("FAIL", f)
    print("labs: FAIL" if failures else "labs: PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
