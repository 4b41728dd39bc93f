from services.appeals.tables import Base
from services.runtime.migrations import run_env

run_env(Base.metadata)
