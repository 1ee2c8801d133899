"""The one path every request takes: validate -> reserve -> run -> store -> capture/release."""
