"""Entry point of the bundled `ewaste-app` (PyInstaller runs this file)."""

import sys

from desktop.gui.app import main

sys.exit(main())
