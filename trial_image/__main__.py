"""``python -m trial_image`` is the same as ``python -m trial_image.train``."""

from trial_image.train import main

raise SystemExit(main())
