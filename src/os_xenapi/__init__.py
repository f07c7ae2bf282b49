"""os-xenapi: manage XenServer and XCP-ng hosts through XAPI."""
