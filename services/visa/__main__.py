"""python -m services.visa serve | migrate | worker"""

from services.runtime.cli import main

main("visa", "services.visa.service:definition", "services.visa.worker:event_services")
