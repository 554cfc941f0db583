"""Static files of the developer console (a package so the wheel ships them)."""
