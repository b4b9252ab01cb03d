"""The script `streamlit run` executes (see medsynth.app.launch); everything is in medsynth.app.shell."""
from medsynth.app.shell import main

main()
