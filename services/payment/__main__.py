"""python -m services.payment serve | migrate | worker"""

from services.runtime.cli import main

main("payment", "services.payment.service:definition", "services.payment.worker:event_services")
