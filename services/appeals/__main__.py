"""python -m services.appeals serve | migrate | worker"""

from services.runtime.cli import main

main("appeals", "services.appeals.service:definition", "services.appeals.worker:event_services")
