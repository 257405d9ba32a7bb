"""Orchestration: typed settings and one short function per stage (data -> features -> align -> ...)."""
