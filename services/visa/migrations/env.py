from services.runtime.migrations import run_env
from services.visa.tables import Base

run_env(Base.metadata)
