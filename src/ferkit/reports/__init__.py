"""Reports: figures and summaries written for people to look at."""
