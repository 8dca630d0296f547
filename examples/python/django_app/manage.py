#!/usr/bin/env python3
"""Django's command-line utility for the Chute example site."""

import os
import sys
from pathlib import Path

# chute_tokens.py lives one directory up, beside this project.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chute_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
