"""python -m services.agro serve | migrate | worker"""

from services.runtime.cli import main

main("agro", "services.agro.service:definition", "services.agro.worker:event_services")
