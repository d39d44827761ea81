"""Reading results: gmat-sweep's statistics, plots, Sobol indices and the notebook handle."""
