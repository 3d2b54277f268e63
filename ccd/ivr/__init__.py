"""IVR: flows as TOML data, the engine that walks them over AGI, customer lookup."""

from ccd.ivr.engine import IvrEngine
from ccd.ivr.flow import BUILTIN_FLOWS, Flow, FlowError, load_flow, load_flows, parse_flow
from ccd.ivr.lookup import Customer, Directory, MemoryDirectory, PgDirectory, Tenant

__all__ = [
    "BUILTIN_FLOWS",
    "Customer",
    "Directory",
    "Flow",
    "FlowError",
    "IvrEngine",
    "MemoryDirectory",
    "PgDirectory",
    "Tenant",
    "load_flow",
    "load_flows",
    "parse_flow",
]
