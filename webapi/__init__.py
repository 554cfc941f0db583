"""HTTP rules every TaskFlow service shares (api.md "Common rules")."""
