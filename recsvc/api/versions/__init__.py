"""The model-versions area (scope `admin`): list the stored versions, activate one (rollback)."""
