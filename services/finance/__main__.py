"""python -m services.finance serve | migrate | worker"""

from services.runtime.cli import main

main("finance", "services.finance.service:definition", "services.finance.worker:event_services")
