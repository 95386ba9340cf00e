"""Users, project memberships and roles, and the permission policy."""
