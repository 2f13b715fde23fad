"""Only the compiled part of the build; everything else is in pyproject.toml."""

from setuptools import Extension, setup

# The store's hot paths in C. engine/hotpath.py is the pure-Python reference and runs when this
# cannot be built (no C compiler at install time): optional, so the install still succeeds.
setup(
    ext_modules=[
        Extension(
            "faster_backend.engine._hotpath",
            sources=["engine/_hotpath.c"],
            include_dirs=["engine"],
            depends=["engine/vendor/xxhash.h"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        # The RESP listener's fast lane (runs of plain GET / SET); without it every request
        # goes through the general parser.
        Extension(
            "faster_backend.integrations.resp._frames",
            sources=["integrations/resp/_frames.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
