"""Unit tests of labs/run_labs.py: how it reads the lab Markdown and compares
outputs. Standard library only; no kvmock needed.

    /usr/bin/python3 tests/labs/test_run_labs.py
"""
import os
import re
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "labs"))
import run_labs  # noqa: E402


def lab(text):
    fd, path = tempfile.mkstemp(suffix=".md")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    try:
        return run_labs.parse_lab(path)
    finally:
        os.unlink(path)


class Parse(unittest.TestCase):
    def test_pairs_sh_and_output(self):
        steps = lab("# t\n\n```sh\necho a\necho b\n```\n\nprose\n\n```output\na\nb\n```\n"
                    "```json\n{}\n```\n```sh\ntrue\n```\n```output\n```\n")
        self.assertEqual([(s.command, s.expected) for s in steps],
                         [("echo a\necho b", "a\nb"), ("true", "")])
        self.assertEqual(steps[0].line, 3)

    def test_restart_blocks(self):
        steps = lab("```sh\ntrue\n```\n```output\n```\n\n```restart\n"
                    "build/kvmock --data ./lab-data --config lab-work/config.json\n```\n"
                    "```sh\necho a\n```\n```output\na\n```\n")
        self.assertEqual([s.restart for s in steps], [False, True, False])
        self.assertEqual(run_labs.restart_command(steps[1].command),
                         ["build/kvmock", "--data", "./lab-data",
                          "--config", "lab-work/config.json"])
        for text in ("```restart\nkvmock --data x\n```\n",               # not build/kvmock
                     "```restart\nbuild/kvmock\nbuild/kvmock\n```\n",    # two lines
                     "```restart\n```\n",                                 # none
                     "```restart\nbuild/kvmock --https-port 1\n```\n",   # the runner's ports
                     "```restart\nbuild/kvmock\n```\n```output\n```\n",  # nothing to compare
                     "```sh\nx\n```\n```restart\nbuild/kvmock\n```\n```output\n```\n"):
            with self.assertRaises(ValueError, msg=text):
                lab(text)

    def test_sh_needs_output(self):
        for text in ("```sh\nx\n```\n", "```sh\nx\n```\n```text\ny\n```\n```output\n```\n",
                     "```output\nz\n```\n", "```sh\nx\n"):
            with self.assertRaises(ValueError, msg=text):
                lab(text)


class Compare(unittest.TestCase):
    def test_exact_and_whitespace(self):
        self.assertIsNone(run_labs.compare("a\nb", "a  \nb\n\n", {}))
        self.assertIsNotNone(run_labs.compare("a\nb", "a\nc", {}))
        self.assertIsNotNone(run_labs.compare("a", "a\nb", {}))
        self.assertIsNotNone(run_labs.compare("a\nb", "a", {}))
        self.assertIsNone(run_labs.compare("", "", {}))
        self.assertIsNotNone(run_labs.compare("", "something", {}))

    def test_free_placeholders(self):
        self.assertIsNone(run_labs.compare('"created": <time>,', '"created": 1795886898,', {}))
        self.assertIsNone(run_labs.compare("<time> x <time>", "1 x 2", {}))
        self.assertIsNotNone(run_labs.compare("<time> x", "1 y", {}))
        self.assertIsNotNone(run_labs.compare("a <x> b", "a  b", {}))  # at least one character
        self.assertIsNone(run_labs.compare("a.b(<x>)", "a.b(+)", {}))  # regex characters are literal
        self.assertIsNotNone(run_labs.compare("a.b", "axb", {}))

    def test_bound_placeholders(self):
        b = {}
        self.assertIsNone(run_labs.compare("kid <v-1>", "kid abc", b))
        self.assertEqual(b, {"v-1": "abc"})
        self.assertIsNotNone(run_labs.compare("kid <v-1>", "kid abd", b))
        self.assertIsNone(run_labs.compare("<v-1> <v-2>", "abc def", b))
        self.assertIn("same value", run_labs.compare("<v-3>", "abc", b))
        self.assertIsNone(run_labs.compare("<n-9> <n-9>", "7 7", b))
        self.assertIsNotNone(run_labs.compare("<m-9> <m-9>", "7 8", b))
        # a failed comparison binds nothing
        self.assertIsNotNone(run_labs.compare("<k-1>\nfixed", "x\nother", b))
        self.assertNotIn("k-1", b)

    def test_ports(self):
        self.assertEqual(run_labs.ports_in("https://a:8443/x http://b:8080/ 184430 80801", 1, 2),
                         "https://a:1/x http://b:2/ 184430 80801")


class TheLabs(unittest.TestCase):
    def test_every_lab_parses_and_ends_with_its_check(self):
        labs = sorted(f for f in os.listdir(os.path.join(ROOT, "labs")) if f[:2].isdigit())
        # every lab file is in the README's table, and every row names a file
        with open(os.path.join(ROOT, "labs", "README.md"), encoding="utf-8") as f:
            listed = re.findall(r"^\| \[\d+\. [^]]+\]\((\d\d-[a-z-]+\.md)\)", f.read(), re.M)
        self.assertEqual(labs, listed)
        self.assertEqual(len(labs), 11, labs)
        for name in labs:
            steps = run_labs.parse_lab(os.path.join(ROOT, "labs", name))
            self.assertIn(f"labs/checks/{name[:2]}-check.py", steps[-1].command, name)
            self.assertIn(f"lab {int(name[:2])}: PASS", steps[-1].expected, name)
            for step in steps:  # a restart keeps the labs' one data folder
                if step.restart:
                    words = run_labs.restart_command(step.command)
                    self.assertEqual(words[words.index("--data") + 1], "./lab-data", step.where())

    def test_readme_has_the_start_command_and_env(self):
        self.assertEqual(run_labs.readme_start_command(),
                         ["build/kvmock", "--data", "./lab-data", "--config", "labs/config.json"])
        self.assertIn("REQUESTS_CA_BUNDLE", run_labs.readme_env_block())


if __name__ == "__main__":
    unittest.main()
