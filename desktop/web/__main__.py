"""`python -m desktop.web`: the same as the `ewaste-web` command."""

import sys

from desktop.web import main

sys.exit(main())
