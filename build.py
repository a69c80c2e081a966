#!/usr/bin/env python3
"""Render, build and push FastDeploy RunPod worker images: python build.py --variant NAME (see --help)."""

import sys

from builder.cli import main

if __name__ == "__main__":
    sys.exit(main())
