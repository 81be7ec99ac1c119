"""`python -m segser.predict CKPT INPUT...`"""

import sys

from segser.predict import main

sys.exit(main())
