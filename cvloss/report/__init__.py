"""Tables, plots and reports of comparisons."""
