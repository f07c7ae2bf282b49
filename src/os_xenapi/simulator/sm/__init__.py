"""The simulated storage manager: SR drivers, the storage they reach, and SM error reporting.

- :mod:`.targets`: the iSCSI targets, NFS exports, SMB shares and HBA LUNs a pool can reach
  (``xapi.storage``, made by :func:`storage_of`), and the SRs and VDIs kept on them.
- :mod:`.drivers`: one driver class per SR type, as xapi-project/sm has one per file.
- :mod:`.errors`: ``SR_BACKEND_FAILURE_<n>`` and XAPI's special mappings of SM faults.

The XAPI side (SR, PBD and VDI records) is in ``ops/sr.py``, ``ops/pbd.py`` and ``ops/vdi.py``.
"""

from .drivers import driver_class, supported_types
from .errors import sm_error
from .targets import StorageWorld, storage_of

__all__ = ["StorageWorld", "driver_class", "sm_error", "storage_of", "supported_types"]
