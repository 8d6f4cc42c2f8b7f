"""The admin API (`/v2/admin/...`): keys, their limits and usage, for the UI and for scripts."""
