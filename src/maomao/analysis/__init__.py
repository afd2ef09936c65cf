"""Pure functions over files and series: snapshot comparison and spike detection."""
