"""The M3s plugin for the mesos CLI (see README.md)."""
# pylint: disable=wildcard-import
from .main import *  # noqa: F401,F403
