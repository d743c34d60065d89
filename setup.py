"""The compiled kernels (``modelshelf._kernels._native``), an optional C extension.

Everything else is configured in pyproject.toml. The extension needs a C compiler and numpy's
headers at build time only; when it cannot be built, installation still succeeds with a
warning and the numpy runtime serves alone (``modelshelf._kernels`` says which one runs).
``MODELSHELF_CFLAGS`` adds compiler and linker flags (scripts/sanitize.sh passes
``-fsanitize=address,undefined``).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCES = sorted(str(p) for p in Path("client/modelshelf/_kernels").glob("*.c"))


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing: the extension is an accelerator, not a need."""

    warned = False

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all (distutils' errors vary by platform)
            self._warn(exc)

    def build_extensions(self) -> None:
        # The interpreter's own link flags may carry its build's library path as an rpath
        # (pyenv's do): the extension needs only libc, and a wheel must not name this machine.
        linker = getattr(self.compiler, "linker_so", None)
        if linker:
            self.compiler.linker_so = [a for a in linker if not a.startswith("-Wl,-rpath")]
        super().build_extensions()

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # a compiler that fails: headers missing, old numpy, ...
            self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        if self.warned:  # the copy of what was not built fails too: say it once
            return
        self.warned = True
        print(
            f"WARNING: modelshelf's compiled kernels were not built ({exc}); "
            "the numpy runtime will serve predictions",
            file=sys.stderr,
        )


def _extensions() -> list[Extension]:
    import numpy as np

    flags = shlex.split(os.environ.get("MODELSHELF_CFLAGS", ""))
    threads = ["-pthread"] if os.name == "posix" else []
    return [
        Extension(
            "modelshelf._kernels._native",
            sources=SOURCES,
            depends=[str(p) for p in Path("client/modelshelf/_kernels").glob("*.h")],
            include_dirs=[np.get_include()],
            # C11 for the kernels; never -ffast-math: results must match numpy to the bit.
            # -pthread: the tree kernel's threads (MODELSHELF_THREADS); explicit, not left to
            # what the interpreter happens to link
            extra_compile_args=[
                "-std=c11",
                "-fno-fast-math",
                "-ffp-contract=off",
                *threads,
                *flags,
            ],
            extra_link_args=[*threads, *flags],
        )
    ]


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
