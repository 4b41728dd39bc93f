from services.agro.tables import Base
from services.runtime.migrations import run_env

run_env(Base.metadata)
