"""Entry point of the bundled `ewaste-classify` (PyInstaller runs this file)."""

import sys

from desktop.core.cli import main

sys.exit(main())
