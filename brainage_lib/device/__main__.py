import sys

from brainage_lib.device.driver import main

sys.exit(main())
